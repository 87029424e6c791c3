/**
 * One host of the test bed: its own network, mount, UTS (host name) and
 * PID namespaces, held by a small `unshare` process that is our child.
 *
 * The holder's shell is PID 1 of the host and reads its stdin, a pipe from
 * this process: when it ends (we close it, or we die, even by SIGKILL) the
 * shell exits, and the kernel kills every process of the host (sshd, sshfs,
 * agents, builds). The namespaces have no names: they vanish with their
 * processes, so a killed test run leaves nothing behind.
 *
 * Commands run in a host through `nsenter --target PID --mount --net --uts
 * --pid`; they see the host's own /proc and mounts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { runCapture, type RunOptions, type RunResult } from '../run.js';

/** How long a host, or a process started in it, may take to appear. */
const START_TIMEOUT_MS = 30_000;

export interface ShOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  timeoutMs?: number;
}

/** A long-lived process started in a host (sshd, sshfs, an agent). */
export interface HostProcess {
  /** The `nsenter` child of this process; its stdio are the process's. */
  child: ChildProcess;
  /** The process itself, as this (the root) PID namespace sees it. */
  pid: number;
  /** Resolves once it has exited. */
  exited: Promise<void>;
  /** Signals it by pid (default SIGTERM); after `graceMs`, SIGKILL. Resolves once it exited. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

async function waitFor<T>(what: string, get: () => T | undefined, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`test bed: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function exitPromise(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

export class Host {
  private constructor(
    /** The bed's name for it: `server`, `client`, `node0`… */
    readonly name: string,
    /** Its address on the bed's bridge (none for the switch). */
    readonly address: string,
    private readonly holder: ChildProcess,
    /** PID 1 of the host, as the root PID namespace sees it. */
    readonly pid: number,
  ) {}

  /** Starts a host named `name` whose host name (uname -n) is `hostname`. */
  static async start(name: string, address: string, hostname: string): Promise<Host> {
    const script = `hostname ${hostname} && ip link set lo up && echo ready && read -r _; exit 0`;
    const holder = spawn(
      'unshare',
      [
        '--net',
        '--mount',
        '--uts',
        '--pid',
        '--fork',
        '--kill-child',
        '--mount-proc',
        '--propagation',
        'private',
        '--',
        // No ~/.bashrc: bash reads it when stdin is a socket (Node's pipes
        // are), and a slow one (pyenv's rehash) held hosts past their start.
        'bash',
        '--norc',
        '--noprofile',
        '-c',
        script,
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    holder.stdin!.on('error', () => {});
    // Never written; it must not keep our event loop alive.
    (holder.stdin as unknown as { unref?: () => void }).unref?.();
    (holder as unknown as { unref: () => void }).unref();
    let stderr = '';
    holder.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const ready = new Promise<void>((resolve, reject) => {
      const lines = createInterface({ input: holder.stdout! });
      lines.once('line', (line) =>
        line === 'ready' ? resolve() : reject(new Error(`host ${name}: ${line}`)),
      );
      holder.once('exit', (code, signal) =>
        reject(new Error(`host ${name} did not start (${signal ?? code}): ${stderr.trim()}`)),
      );
    });
    const timer = setTimeout(() => holder.kill('SIGKILL'), START_TIMEOUT_MS);
    try {
      await ready;
    } finally {
      clearTimeout(timer);
    }
    const pid = await waitFor(`host ${name}`, () => childrenOf(holder.pid!)[0], START_TIMEOUT_MS);
    return new Host(name, address, holder, pid);
  }

  /**
   * nsenter's arguments to run something in this host, in `cwd` (default /).
   * The directory is entered after the namespaces (nsenter's --wd would open
   * it in ours, not on the host's mounts).
   */
  enterArgs(cwd = '/'): string[] {
    return [
      '--target',
      String(this.pid),
      '--mount',
      '--net',
      '--uts',
      '--pid',
      'env',
      `--chdir=${cwd}`,
    ];
  }

  /**
   * Runs `file args` in this host to its end with real pipes (see
   * run.ts: runCapture); never rejects on a non-zero exit.
   */
  run(file: string, args: string[], options: Partial<RunOptions> = {}): Promise<RunResult> {
    return runCapture('nsenter', [...this.enterArgs(options.cwd), file, ...args], {
      ...options,
      cwd: '/',
    });
  }

  /** Runs a shell script in this host; rejects (with its stderr) unless it exits 0. */
  sh(script: string, options: ShOptions = {}): Promise<string> {
    return this.exec(['sh', '-c', script], script, options);
  }

  /** Writes `data` to `path` as a process of this host (through its mounts). */
  async writeFile(path: string, data: string | Buffer): Promise<void> {
    await this.exec(['sh', '-c', 'cat > "$1"', 'sh', path], `write ${path}`, { input: data });
  }

  private async exec(argv: string[], what: string, options: ShOptions): Promise<string> {
    const r = await execa('nsenter', [...this.enterArgs(options.cwd), ...argv], {
      env: options.env ?? process.env,
      extendEnv: false,
      input: options.input,
      timeout: options.timeoutMs ?? 60_000,
      reject: false,
      encoding: 'utf8',
      stripFinalNewline: false,
    });
    if (r.exitCode !== 0) {
      throw new Error(
        `test bed: on ${this.name}, \`${what}\` failed (${r.exitCode ?? r.signal}): ${r.stderr.trim()}`,
      );
    }
    return r.stdout;
  }

  /** Starts a long-lived process in this host; resolves with its pid once it exists. */
  async spawn(
    file: string,
    args: string[],
    options: { cwd?: string; env?: NodeJS.ProcessEnv; stdin?: 'pipe' | 'ignore' } = {},
  ): Promise<HostProcess> {
    const child = spawn('nsenter', [...this.enterArgs(options.cwd), file, ...args], {
      env: options.env ?? process.env,
      stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
    });
    child.stdin?.on('error', () => {});
    const exited = exitPromise(child);
    let gone = false;
    void exited.then(() => (gone = true));
    // nsenter forks (it enters a PID namespace) and waits for its child.
    const pid = await waitFor(
      `${file} to start on ${this.name}`,
      () => (gone ? -1 : childrenOf(child.pid!)[0]),
      START_TIMEOUT_MS,
    );
    const stop = async (signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> => {
      if (gone || pid < 0) return exited;
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
      const timer = setTimeout(() => {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }, graceMs);
      await exited;
      clearTimeout(timer);
    };
    return { child, pid, exited, stop };
  }

  /** Ends the host: every process still in it is killed by the kernel. */
  async close(): Promise<void> {
    const exited = exitPromise(this.holder);
    this.holder.stdin!.end();
    const timer = setTimeout(() => this.holder.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}
