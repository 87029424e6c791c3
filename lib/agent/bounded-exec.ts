/**
 * Runs a small program with a time limit and collects its output, as
 * child_process.execFile does, without execFile's trap: when its timeout
 * fires, execFile first drops the program's output pipes, then kills it.
 * If the program had already finished (its exit and its output not yet
 * read because our event loop was late: a starved process runs its due
 * timers before it reads its pipes), the kill finds nothing to kill and
 * execFile reports a success with empty output. That is how an agent at
 * load 22 sent empty MUNGE credentials in its welcome (issue 15: `munge`
 * then ran under execFile's timeout; `getent` and the start check's
 * launcher still did). Here the time limit only kills: a program that
 * finished keeps its exit status and all its output; one killed ends by
 * SIGKILL, which callers treat as a failure.
 */
import { spawn } from 'node:child_process';

export interface BoundedOptions {
  /** The program is killed (SIGKILL) if it has not ended by then. */
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to its stdin, which is then closed (default: nothing). */
  input?: string | Buffer;
  /** Output kept per stream; past it the program is killed (default 64 KiB). */
  maxBytes?: number;
}

export interface BoundedResult {
  /** Its exit status; null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: Buffer;
  /** We killed it: it ran past the time limit, or wrote more than maxBytes. */
  killed: 'time' | 'output' | undefined;
}

/** Runs `file` with `args`; rejects only when it cannot be started (ENOENT, …). */
export function runBounded(
  file: string,
  args: readonly string[],
  options: BoundedOptions,
): Promise<BoundedResult> {
  const maxBytes = options.maxBytes ?? 64 * 1024;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env: options.env ?? {},
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let killed: BoundedResult['killed'];
    const kill = (why: 'time' | 'output'): void => {
      // Once its exit is known its pid may be another's: only before that.
      if (killed !== undefined || child.exitCode !== null || child.signalCode !== null) return;
      killed = why;
      child.kill('SIGKILL');
    };
    const collect = (stream: NodeJS.ReadableStream): Buffer[] => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      stream.on('data', (b: Buffer) => {
        if (bytes + b.length > maxBytes) kill('output');
        else chunks.push(b);
        bytes += b.length;
      });
      return chunks;
    };
    const out = collect(child.stdout);
    const err = collect(child.stderr);
    const timer = setTimeout(() => kill('time'), options.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out),
        stderr: Buffer.concat(err),
        killed: signal === 'SIGKILL' ? killed : undefined,
      });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}
