import { writeFileAtomic } from '../output-file.js';
import type { BuildReport } from '../coordinator/build-report.js';
import type { JobSpan } from './job-span.js';
import { runningSteps } from './parallelism.js';
import type { LanedSpan } from './slot-lanes.js';
import type {
  CounterEvent,
  MetadataEvent,
  TraceEvent,
  TraceFile,
  TraceOtherData,
} from './trace-format.js';

/** Longest event name; the whole command is in the event's args. */
export const NAME_MAX_CHARS = 80;

/** The process of lines placement gave back to the client. */
export const LOCAL_NODE = 'local';

export interface TraceInput {
  /** When make started (ms since epoch): ts 0. */
  originMs: number;
  /** When make ended. */
  endMs: number;
  /** The build's nodes, in the order their pids follow. */
  nodes: ReadonlyArray<{ id: string; slots: number }>;
  /** Every job, timed or not. */
  spans: readonly JobSpan[];
  /** The timed jobs on their lanes ({@link assignLanes}). */
  laned: readonly LanedSpan[];
  report: Pick<BuildReport, 'exitCode' | 'signal' | 'slots' | 'jobs'> & {
    parallelism: { peak: number; mean: number };
  };
}

/** A recipe line as an event name: one line, at most {@link NAME_MAX_CHARS}. */
export function eventName(command: string): string {
  const line = command.replace(/\\\n/g, ' ').replace(/\s+/g, ' ').trim();
  if (line === '') return '(empty line)';
  return line.length > NAME_MAX_CHARS ? line.slice(0, NAME_MAX_CHARS - 1) + '…' : line;
}

const round3 = (ms: number): number => Math.round(ms * 1000) / 1000;

function jobArgs(s: JobSpan, startMs: number): Record<string, unknown> {
  const waitMs = Math.max(0, startMs - s.requestedAtMs);
  const args: Record<string, unknown> = {
    command: s.command,
    ...(s.target !== undefined ? { target: s.target } : {}),
    cwd: s.cwd,
    node: s.nodeId,
    seq: s.seq,
    exitCode: s.code,
    signal: s.signal,
  };
  if (s.timed) {
    // The wait from the shim's request to the start: the node's queue
    // (measured by the agent), and the rest, dispatch and the network.
    args['waitMs'] = waitMs;
    args['queuedMs'] = s.queuedMs;
    args['dispatchMs'] = Math.max(0, waitMs - s.queuedMs);
    args['runMs'] = s.runMs;
  } else if (s.error === undefined) {
    args['note'] = 'run in the shim on the client: its duration is not seen';
  }
  if (s.error !== undefined) args['error'] = s.error;
  // Visibility lag: until the client saw the targets as the node did, and
  // until the node saw the inputs as their writers did.
  if (s.fs) {
    args['fsLagMs'] = round3(s.fs.lagMs);
    args['fsRetries'] = s.fs.retries;
    if (s.fs.stale.length > 0) args['fsStale'] = s.fs.stale;
  }
  if (s.inputWait) {
    args['inputLagMs'] = round3(s.inputWait.lagMs);
    args['inputRetries'] = s.inputWait.retries;
    if (s.inputWait.stale.length > 0) args['inputStale'] = s.inputWait.stale;
  }
  return args;
}

/**
 * The build as Chrome trace-event JSON: a process per node (pid = its
 * index; then `local`, then the build's counters), a thread per slot, a
 * complete event per job on the lowest slot lane free at its start, and
 * counter tracks for jobs running (build) and waiting (per node).
 */
export function buildTrace(input: TraceInput): TraceFile {
  const { originMs, endMs, spans, laned, report } = input;
  const us = (ms: number): number => Math.max(0, Math.round((ms - originMs) * 1000));
  const nodes = input.nodes.map((n) => ({ id: n.id, slots: n.slots }));
  for (const s of spans) {
    if (!nodes.some((n) => n.id === s.nodeId) && s.nodeId !== LOCAL_NODE) {
      nodes.push({ id: s.nodeId, slots: 1 });
    }
  }
  const pidOf = new Map(nodes.map((n, i) => [n.id, i]));
  const hasLocal = spans.some((s) => s.nodeId === LOCAL_NODE);
  if (hasLocal) pidOf.set(LOCAL_NODE, nodes.length);
  const buildPid = nodes.length + (hasLocal ? 1 : 0);
  const pid = (nodeId: string): number => pidOf.get(nodeId) ?? buildPid;

  const meta: MetadataEvent[] = [];
  const nameProcess = (p: number, name: string): void => {
    meta.push({ name: 'process_name', ph: 'M', ts: 0, pid: p, tid: 0, args: { name } });
    meta.push({
      name: 'process_sort_index',
      ph: 'M',
      ts: 0,
      pid: p,
      tid: 0,
      args: { sort_index: p },
    });
  };
  const thread = (p: number, tid: number, name: string): void => {
    meta.push({ name: 'thread_name', ph: 'M', ts: 0, pid: p, tid, args: { name } });
    meta.push({
      name: 'thread_sort_index',
      ph: 'M',
      ts: 0,
      pid: p,
      tid,
      args: { sort_index: tid },
    });
  };
  nodes.forEach((n, i) => {
    nameProcess(i, n.id);
    const lanes = Math.max(
      n.slots,
      ...laned.filter((l) => l.span.nodeId === n.id).map((l) => l.lane + 1),
    );
    for (let lane = 0; lane < lanes; lane++) thread(i, lane, `slot ${lane}`);
  });
  if (hasLocal) {
    nameProcess(pid(LOCAL_NODE), 'local (run by the shim on the client)');
    thread(pid(LOCAL_NODE), 0, 'dispatched');
  }
  nameProcess(buildPid, 'build');

  const events: TraceEvent[] = [];
  for (const l of laned) {
    events.push({
      name: eventName(l.span.target ?? l.span.command),
      cat: 'job',
      ph: 'X',
      ts: us(l.startMs),
      dur: Math.max(0, Math.round((l.endMs - l.startMs) * 1000)),
      pid: pid(l.span.nodeId),
      tid: l.lane,
      args: jobArgs(l.span, l.startMs),
    });
  }
  for (const s of spans) {
    if (s.timed) continue;
    events.push({
      name: eventName(s.target ?? s.command),
      cat: s.error === undefined ? 'local' : 'error',
      ph: 'i',
      s: 't',
      ts: us(s.endMs),
      pid: pid(s.nodeId),
      tid: 0,
      args: jobArgs(s, s.endMs),
    });
  }
  const counter = (p: number, name: string, key: string, t: number, n: number): CounterEvent => ({
    name,
    ph: 'C',
    ts: us(t),
    pid: p,
    tid: 0,
    args: { [key]: n },
  });
  for (const step of runningSteps(laned.map((l) => ({ start: l.startMs, end: l.endMs })))) {
    events.push(counter(buildPid, 'running jobs', 'jobs', step.t, step.n));
  }
  for (const n of nodes) {
    const waits = spans
      .filter((s) => s.timed && s.nodeId === n.id)
      .map((s) => ({ start: s.requestedAtMs, end: s.startMs }));
    for (const step of runningSteps(waits)) {
      events.push(counter(pid(n.id), 'waiting jobs', 'jobs', step.t, step.n));
    }
  }
  events.sort((a, b) => a.ts - b.ts);

  const otherData: TraceOtherData = {
    tool: 'mpmake',
    traceVersion: 1,
    startedAt: new Date(originMs).toISOString(),
    endUs: us(endMs),
    exitCode: report.exitCode,
    signal: report.signal,
    slots: report.slots,
    nodes: nodes.map((n) => ({ id: n.id, pid: pid(n.id), slots: n.slots })),
    jobs: report.jobs,
    parallelism: report.parallelism,
  };
  return { traceEvents: [...meta, ...events], displayTimeUnit: 'ms', otherData };
}

/** The trace as text: one event per line, so it also greps well. */
export function traceText(trace: TraceFile): string {
  const events = trace.traceEvents.map((e) => JSON.stringify(e)).join(',\n');
  return (
    `{"traceEvents":[\n${events}\n],\n"displayTimeUnit":${JSON.stringify(trace.displayTimeUnit)},\n` +
    `"otherData":${JSON.stringify(trace.otherData)}}\n`
  );
}

/** Written whole or not at all (see output-file.ts). */
export function writeTraceFile(path: string, trace: TraceFile): void {
  writeFileAtomic(path, traceText(trace));
}
