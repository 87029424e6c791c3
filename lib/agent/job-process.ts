import { EventEmitter } from 'node:events';
import { constants } from 'node:os';
import type { StreamId } from '../protocol/messages.js';

/** How a job ended: exactly one of code and signal is set. */
export interface JobOutcome {
  code: number | null;
  signal: string | null;
  /** User + system CPU time of the job, ms, where the way it ran can tell (the spawner). */
  cpuMs?: number;
}

export interface JobProcessEvents {
  /** Output, in order per stream. */
  data: [stream: StreamId, bytes: Buffer];
  /** The job ended and all its output was emitted (or given up on); emitted once. */
  finish: [JobOutcome];
}

/** How long output may stay silent after the job's exit before we stop reading it. */
export const EXIT_IDLE_MS = 200;

/**
 * One running job: its own process group (session), so a cancel reaches
 * every process it started. Subclasses run it on pipes or on a pty.
 */
export abstract class JobProcess extends EventEmitter<JobProcessEvents> {
  /** The job's pid, which is also its process group id; undefined if it never started. */
  abstract readonly pid: number | undefined;
  /** Stop reading output (the job blocks once the kernel's buffer is full). */
  abstract pause(): void;
  abstract resume(): void;

  /** The client's terminal changed size: only a job under a pty has one to follow. */
  resize(_cols: number, _rows: number): void {}

  /** Sends `signal` to the job's whole process group. */
  kill(signal: NodeJS.Signals): void {
    killGroup(this.pid, signal);
  }
}

/** Signals the process group `pgid`; a group that is already gone is fine. */
export function killGroup(pgid: number | undefined, signal: NodeJS.Signals): void {
  if (pgid === undefined || pgid <= 1) return;
  try {
    process.kill(-pgid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** Whether process `pid` still exists (a zombie counts as existing). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const signalNames = new Map<number, NodeJS.Signals>(
  Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]),
);

/** `SIGTERM` for 15; `SIG<n>` for a number this platform has no name for. */
export function signalName(signal: number): string {
  return signalNames.get(signal) ?? `SIG${signal}`;
}

/** The signal name for `name` ('TERM' or 'SIGTERM'), or undefined when there is none. */
export function parseSignal(name: string): NodeJS.Signals | undefined {
  const upper = name.toUpperCase();
  const full = upper.startsWith('SIG') ? upper : `SIG${upper}`;
  return full in constants.signals ? (full as NodeJS.Signals) : undefined;
}
