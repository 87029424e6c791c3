/**
 * Helpers for the cluster-view tests: the mpm CLI run with captured output
 * or under a pseudo-terminal, and a loopback port where nothing listens.
 */
import { createRequire } from 'node:module';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { IPty } from 'node-pty';
import { repoRoot } from '../helpers/paths.js';
import { sleepers } from '../helpers/procs.js';
import { cleanEnv, runCapture, type RunOptions, type RunResult } from '../helpers/run.js';

/** The compiled mpm command line. */
export const mpmCli = join(repoRoot, 'dist', 'cli', 'mpm.js');

/** Runs `mpm ARGS` under this Node, capturing stdout and stderr (never a terminal). */
export function runMpm(args: string[], options: RunOptions): Promise<RunResult> {
  return runCapture(process.execPath, [mpmCli, ...args], { timeoutMs: 60_000, ...options });
}

/** Kills what is left of this test's marked `sleep`s (they may be ending on their own). */
export function killSleepers(marker: string): void {
  for (const pid of sleepers(marker)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}

/** A loopback port nobody listens on (bound, read back, released). */
export async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The part of tap's Test these helpers use. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

type PtyModule = typeof import('node-pty');

/** A program on a pseudo-terminal, with everything it wrote so far. */
export class PtyRun {
  output = '';
  readonly exited: Promise<{ exitCode: number; signal?: number }>;

  private constructor(readonly term: IPty) {
    term.onData((data) => {
      this.output += data;
    });
    this.exited = new Promise((resolve) => term.onExit(resolve));
  }

  /** Spawns `file args` on a new pty; killed (SIGKILL) at teardown if still running. */
  static start(
    t: Teardown,
    file: string,
    args: string[],
    opts: { cwd: string; env?: NodeJS.ProcessEnv; cols?: number; rows?: number },
  ): PtyRun {
    const pty = createRequire(import.meta.url)('node-pty') as PtyModule;
    const env = opts.env ?? cleanEnv({ TERM: 'xterm-256color' });
    const term = pty.spawn(file, args, {
      name: 'xterm-256color',
      cols: opts.cols ?? 160,
      rows: opts.rows ?? 40,
      cwd: opts.cwd,
      env: Object.fromEntries(
        Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined),
      ),
    });
    const run = new PtyRun(term);
    let over = false;
    void run.exited.then(() => (over = true));
    t.teardown(() => {
      if (!over) {
        try {
          process.kill(term.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    });
    return run;
  }

  /** Resolves once `cond(output)` holds; rejects after `timeoutMs` naming `what`. */
  async waitFor(
    cond: (output: string) => boolean,
    what: string,
    timeoutMs = 30_000,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond(this.output)) {
      if (Date.now() > deadline) {
        throw new Error(
          `timed out waiting for ${what}; output so far: ${JSON.stringify(this.output.slice(-2000))}`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /**
   * Waits for the exit, then for the output to go quiet: node-pty may
   * report the exit before the last bytes were read.
   */
  async finish(timeoutMs = 15_000): Promise<{ exitCode: number; signal?: number }> {
    const timer = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error('the program on the pty did not exit')), timeoutMs).unref(),
    );
    const result = await Promise.race([this.exited, timer]);
    let seen = -1;
    while (seen !== this.output.length) {
      seen = this.output.length;
      await new Promise((r) => setTimeout(r, 100));
    }
    return result;
  }
}
