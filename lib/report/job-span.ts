import type { JobEndEvent } from '../coordinator/build-events.js';

/** A wait until files looked as their writer saw them (--mp-fs-wait). */
export interface FsWait {
  lagMs: number;
  retries: number;
  stale: string[];
}

/**
 * One recipe line as the trace and the report see it, on the client's
 * clock (ms since epoch). The agent measures how long the line waited in
 * the node's queue and ran; the client sees when it asked and when the exit
 * arrived, so the run is placed to end when the exit arrived.
 */
export interface JobSpan {
  seq: number;
  nodeId: string;
  command: string;
  /** make's `$@` for the line, when known. */
  target?: string;
  cwd: string;
  requestedAtMs: number;
  startMs: number;
  endMs: number;
  /** From the agent: time in the node's queue, and running. */
  queuedMs: number;
  runMs: number;
  code: number | null;
  signal: string | null;
  error?: string;
  /** Visibility lag of its targets on the client, and of its inputs on its node. */
  fs?: FsWait;
  inputWait?: FsWait;
  /**
   * False when the run was not seen: a line placement gave back to the
   * client whose end could not be watched (no /proc), or one that could
   * not run at all.
   */
  timed: boolean;
}

/** The span of a finished job. */
export function jobSpan(ev: JobEndEvent): JobSpan {
  const ranInShim = ev.nodeId === 'local' && ev.code === null && ev.signal === null;
  const timed = (!ranInShim || ev.endSeen === true) && ev.error === undefined;
  // Rounding (whole ms on both machines) must not put the start before the request.
  const startMs = timed ? Math.max(ev.requestedAtMs, ev.endedAtMs - ev.runMs) : ev.endedAtMs;
  const span: JobSpan = {
    seq: ev.seq,
    nodeId: ev.nodeId,
    command: ev.command,
    cwd: ev.cwd,
    requestedAtMs: ev.requestedAtMs,
    startMs,
    endMs: ev.endedAtMs,
    queuedMs: ev.queuedMs,
    runMs: ev.runMs,
    code: ev.code,
    signal: ev.signal,
    timed,
  };
  if (ev.target !== undefined) span.target = ev.target;
  if (ev.error !== undefined) span.error = ev.error;
  if (ev.fs !== undefined) span.fs = ev.fs;
  if (ev.inputWait !== undefined) span.inputWait = ev.inputWait;
  return span;
}
