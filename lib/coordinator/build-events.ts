/**
 * What happens to each recipe line the coordinator handles, for the
 * progress line, the trace file and the report. Times are ms since epoch on
 * the client's clock.
 */
export interface JobStartEvent {
  /** Unique within the build. */
  seq: number;
  /** The node's id, or 'local' when placement gave the line back. */
  nodeId: string;
  /** The recipe line (make's last shell argument), as text. */
  command: string;
  /** The target whose recipe this is (make's `$@`), when known. */
  target?: string;
  cwd: string;
  /** When the shim's request arrived. */
  requestedAtMs: number;
}

export interface JobEndEvent extends JobStartEvent {
  endedAtMs: number;
  code: number | null;
  signal: string | null;
  /** From the agent: how long it waited in the node's queue, and ran. */
  queuedMs: number;
  runMs: number;
  /** The job's user + system CPU time on its node, when the node could tell. */
  cpuMs?: number;
  /** Set when the job could not run at all. */
  error?: string;
  /**
   * A line run on the client (nodeId 'local') whose process was watched to
   * its end: it ran from its request to `endedAtMs` (`runMs` says so too).
   */
  endSeen?: boolean;
  /**
   * The wait until the client saw the job's targets as its node did
   * (--mp-fs-wait): how long, how many retries, files still stale.
   */
  fs?: { lagMs: number; retries: number; stale: string[] };
  /** The same on the node, for inputs written elsewhere, before the job started. */
  inputWait?: { lagMs: number; retries: number; stale: string[] };
}

export interface BuildEvents {
  'job-start': [JobStartEvent];
  'job-end': [JobEndEvent];
  /** A job's output is about to reach the terminal (a progress line must step aside). */
  'job-output': [];
}
