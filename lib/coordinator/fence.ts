/**
 * Fencing a lost node (--mp-fence): before any job of a node we lost runs
 * again elsewhere, the user's command cuts that node off from the shared
 * file system (revokes its export, ends its session at the file server,
 * powers it off). A lease makes the node kill its own jobs, but a write
 * those jobs already handed to the node's network file system client is
 * beyond the node's reach: it lands whenever the link returns. Only the
 * file server (or the power switch) can refuse it, as Pacemaker's STONITH
 * and NFS servers' lock revocation do.
 */
import { execa } from 'execa';

export interface FenceOptions {
  /** A shell command line, run with /bin/sh -c. */
  command: string;
  /** Where it came from (`--mp-fence`, `MPMAKE_FENCE`, `config "fence" (FILE)`). */
  from: string;
  timeoutMs: number;
}

export interface FenceOutcome {
  ok: boolean;
  ms: number;
  /** `exited 0`, `exited 3`, `killed by SIGTERM`, `timed out after 60000 ms`, `could not start: …`. */
  status: string;
  /** The last lines of its stderr (and stdout), trimmed. */
  tail: string;
}

/** Bytes of the command's output kept for the message. */
const TAIL_BYTES = 400;

function tailOf(text: string): string {
  const t = text.trim();
  return t.length > TAIL_BYTES ? `…${t.slice(-TAIL_BYTES)}` : t;
}

/**
 * Runs the fence command for one node and waits for it, at most
 * `timeoutMs`; past that its whole process group is killed and the fence
 * failed. It gets MPMAKE_FENCE_NODE (the agent's id), MPMAKE_FENCE_ADDR
 * (host:port as listed), MPMAKE_FENCE_HOST (the host part) and
 * MPMAKE_FENCE_REASON (why the node was lost).
 */
export async function runFence(
  options: FenceOptions,
  node: { id: string; address: string; reason: string },
): Promise<FenceOutcome> {
  const started = performance.now();
  const host = node.address.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  const child = execa('/bin/sh', ['-c', options.command], {
    env: {
      MPMAKE_FENCE_NODE: node.id,
      MPMAKE_FENCE_ADDR: node.address,
      MPMAKE_FENCE_HOST: host,
      MPMAKE_FENCE_REASON: node.reason,
    },
    stdin: 'ignore',
    all: true,
    reject: false,
    // Its own process group, so that a timeout ends whatever it started.
    detached: true,
    encoding: 'utf8',
    maxBuffer: 1024 * 1024,
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }, options.timeoutMs);
  const r = await child;
  clearTimeout(timer);
  const ms = Math.round(performance.now() - started);
  const tail = tailOf(typeof r.all === 'string' ? r.all : '');
  if (timedOut) return { ok: false, ms, status: `timed out after ${options.timeoutMs} ms`, tail };
  if (r.failed && r.exitCode === undefined && r.signal === undefined) {
    return { ok: false, ms, status: `could not start: ${r.shortMessage}`, tail };
  }
  if (r.signal) return { ok: false, ms, status: `killed by ${r.signal}`, tail };
  return { ok: r.exitCode === 0, ms, status: `exited ${r.exitCode}`, tail };
}

/** What the build's messages and report say of a fence. */
export function fenceProblem(
  options: FenceOptions,
  node: { id: string; address: string; reason: string },
  outcome: FenceOutcome,
): string {
  return (
    `could not fence ${node.id}, lost (${node.reason}) while it ran this job: the fence ` +
    `command (${options.from}) ${outcome.status}` +
    `${outcome.tail ? `; its output ended: ${outcome.tail}` : ''}. The job was not run again: ` +
    `what it already wrote on ${node.id} may still reach the shared files, and a second copy ` +
    `would write beside it. Make sure ${node.id} is off or cut off from the file server, fix ` +
    `the fence command, then run the build again`
  );
}
