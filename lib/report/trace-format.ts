/**
 * The parts of the Chrome trace-event format ("JSON Object Format") that
 * mpmake writes and reads: what Perfetto and chrome://tracing open. Times
 * are microseconds from the trace's origin (when make started).
 */

/** A job: one complete event on its node's slot track. */
export interface CompleteEvent {
  name: string;
  cat: string;
  ph: 'X';
  ts: number;
  dur: number;
  pid: number;
  tid: number;
  args: Record<string, unknown>;
}

/** A line whose duration is not known (run in the shim, or never run). */
export interface InstantEvent {
  name: string;
  cat: string;
  ph: 'i';
  /** 't': drawn on its thread's track only. */
  s: 't';
  ts: number;
  pid: number;
  tid: number;
  args: Record<string, unknown>;
}

/** A counter track (running jobs, waiting jobs). */
export interface CounterEvent {
  name: string;
  ph: 'C';
  ts: number;
  pid: number;
  tid: number;
  args: Record<string, number>;
}

/** Names and orders processes (nodes) and threads (slots). */
export interface MetadataEvent {
  name: 'process_name' | 'process_sort_index' | 'thread_name' | 'thread_sort_index';
  ph: 'M';
  ts: number;
  pid: number;
  tid: number;
  args: { name: string } | { sort_index: number };
}

export type TraceEvent = CompleteEvent | InstantEvent | CounterEvent | MetadataEvent;

/** mpmake's facts about the build, in the trace's `otherData`. */
export interface TraceOtherData {
  tool: 'mpmake';
  traceVersion: 1;
  /** The origin of `ts`, ISO 8601 on the client's clock. */
  startedAt: string;
  /** From the origin to the end of make, in µs: the build's window. */
  endUs: number;
  exitCode: number | null;
  signal: string | null;
  /** The build's -j. */
  slots: number;
  nodes: Array<{ id: string; pid: number; slots: number }>;
  jobs: { total: number; remote: number; local: number; retried: number; failed: number };
  parallelism: { peak: number; mean: number };
}

export interface TraceFile {
  traceEvents: TraceEvent[];
  displayTimeUnit: 'ms';
  otherData: TraceOtherData;
}
