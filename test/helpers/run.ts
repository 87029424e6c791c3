/**
 * Runs make and mpmake the way a terminal or CI would, and captures exactly
 * what they wrote. Output goes to real pipes (FIFOs), not Node's default
 * socketpairs: either one pipe per stream, or ONE pipe for both, as in
 * `make 2>&1 | tee log`, where the order across the streams is observable.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localSecret } from '../../lib/agent/local-secret.js';
import { mpmakeCli } from './paths.js';

export type StdioMode = 'separate' | 'merged';

export interface RunOptions {
  cwd: string;
  /** The whole environment; default {@link cleanEnv}(). */
  env?: NodeJS.ProcessEnv;
  /** 'separate': stdout and stderr on two pipes; 'merged': both on one. */
  stdio?: StdioMode;
  /** Run under this umask, via `sh -c 'umask …; exec …'`. */
  umask?: number;
  /** Kill (SIGKILL, whole group when detached) after this long. Default 120 s. */
  timeoutMs?: number;
  /** Lead a new process group, as a shell's foreground job does. */
  detached?: boolean;
  /** Called once the child is spawned (e.g. to signal it later). */
  onSpawn?: (child: ChildProcess) => void;
  /** The program's argv[0] (what the user typed), when not `file`. */
  argv0?: string;
}

export interface RunResult {
  /** Everything from fd 1 (or from fds 1 and 2 when merged). */
  stdout: Buffer;
  /** Everything from fd 2; empty when merged. */
  stderr: Buffer;
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  pid: number;
}

const MAKE_VARS = [
  'MAKEFLAGS',
  'MFLAGS',
  'GNUMAKEFLAGS',
  'MAKELEVEL',
  'MAKEFILES',
  'MAKEOVERRIDES',
  'MAKE_TERMOUT',
  'MAKE_TERMERR',
];

let emptyConfigHome: string | undefined;

/** tap's hooks in a test's environment: NODE_OPTIONS (its loaders) and its own _TAPJS* settings. */
function isTapHook(key: string): boolean {
  return key === 'NODE_OPTIONS' || key.startsWith('_TAPJS');
}

/**
 * `env` (default the test process's) without tap's hooks. tap puts its
 * process-tracking loader in NODE_OPTIONS, so every Node child (an agent,
 * a fallback shim) would load it: over a second of CPU per process at
 * start, on a 2-core machine, for nothing the tests use.
 */
export function withoutTapHooks(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([key]) => !isTapHook(key)));
}

/**
 * The test process's environment without what would change make's or
 * mpmake's behaviour: a parent make's jobserver and level (`make test` runs
 * tap under make), MPMAKE_* settings, tap's NODE_OPTIONS loaders, and any
 * user config file (XDG_CONFIG_HOME points at an empty directory). Messages
 * in the C locale; SHELL fixed, since recipes may print it. MPMAKE_SECRET_FILE
 * names this process's throwaway secret, which the test agents listen with
 * (`MPMAKE_SECRET_FILE: ''` in `extra` takes it away).
 */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  if (emptyConfigHome === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'mpmake-test-config-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    emptyConfigHome = dir;
  }
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined) continue;
    if (MAKE_VARS.includes(key) || key.startsWith('MPMAKE_') || key.startsWith('TAP')) continue;
    if (isTapHook(key) || key.startsWith('LC_')) continue;
    env[key] = value;
  }
  env['LC_ALL'] = 'C';
  env['LANG'] = 'C';
  env['SHELL'] = '/bin/bash';
  env['XDG_CONFIG_HOME'] = emptyConfigHome;
  env['MPMAKE_SECRET_FILE'] = localSecret().path;
  // Builds under test send every line to nodes and keep no history between
  // tests; the tests of learning (test/cli/new-user.test.ts) turn it on.
  env['XDG_CACHE_HOME'] = join(emptyConfigHome, 'cache');
  env['MPMAKE_NO_LEARN'] = '1';
  return { ...env, ...extra };
}

/** A FIFO in a private directory; the read end as a stream, the write end as an fd. */
function openPipe(dir: string, name: string): { reader: Socket; writeFd: number } {
  const path = join(dir, name);
  execFileSync('mkfifo', ['-m', '600', path]);
  const readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  // Blocking write end: children must not see EAGAIN on their stdout.
  const writeFd = openSync(path, constants.O_WRONLY);
  const reader = new Socket({ fd: readFd, readable: true, writable: false });
  return { reader, writeFd };
}

function collect(reader: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    reader.on('data', (chunk: Buffer) => chunks.push(chunk));
    reader.on('error', reject);
    reader.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

/** Spawns `file args` and captures its output; never rejects on a non-zero exit. */
export async function runCapture(
  file: string,
  args: string[],
  options: RunOptions,
): Promise<RunResult> {
  const mode = options.stdio ?? 'separate';
  let cmd = file;
  let argv = args;
  let argv0 = options.argv0;
  if (options.umask !== undefined) {
    const exec = argv0 !== undefined ? `exec -a ${argv0} "$@"` : 'exec "$@"';
    cmd = argv0 !== undefined ? '/bin/bash' : '/bin/sh';
    argv = [
      '-c',
      `umask ${options.umask.toString(8).padStart(3, '0')} && ${exec}`,
      'sh',
      file,
      ...args,
    ];
    argv0 = undefined;
  }
  const pipeDir = mkdtempSync(join(tmpdir(), 'mpmake-test-pipes-'));
  try {
    const out = openPipe(pipeDir, 'out');
    const err = mode === 'separate' ? openPipe(pipeDir, 'err') : undefined;
    const outDone = collect(out.reader);
    const errDone = err ? collect(err.reader) : Promise.resolve(Buffer.alloc(0));
    let child: ChildProcess;
    try {
      child = spawn(cmd, argv, {
        ...(argv0 !== undefined ? { argv0 } : {}),
        cwd: options.cwd,
        env: options.env ?? cleanEnv(),
        stdio: ['ignore', out.writeFd, err ? err.writeFd : out.writeFd],
        detached: options.detached ?? false,
      });
    } finally {
      closeSync(out.writeFd);
      if (err) closeSync(err.writeFd);
    }
    const pid = child.pid ?? -1;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (options.detached) process.kill(-pid, 'SIGKILL');
        else child.kill('SIGKILL');
      } catch {
        // already gone
      }
      // Output pipes may be held by orphans; stop waiting for them.
      out.reader.destroy();
      err?.reader.destroy();
    }, options.timeoutMs ?? 120_000);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
      (resolve, reject) => {
        child.on('error', reject);
        child.on('exit', (code, signal) => resolve({ code, signal }));
      },
    );
    options.onSpawn?.(child);
    try {
      const [{ code, signal }, stdout, stderr] = await Promise.all([exited, outDone, errDone]);
      return { stdout, stderr, code, signal, timedOut, pid };
    } finally {
      clearTimeout(timer);
    }
  } finally {
    rmSync(pipeDir, { recursive: true, force: true });
  }
}

/** Plain GNU make, found on PATH as `make` (so its messages say `make:`). */
export function runMake(args: string[], options: RunOptions): Promise<RunResult> {
  return runCapture('make', args, options);
}

/**
 * The built mpmake CLI under this Node, called as `make` (its argv[0]), as
 * a drop-in installed under make's name would be: make's messages and
 * $(MAKE) then read as plain make's do.
 */
export function runMpmake(args: string[], options: RunOptions): Promise<RunResult> {
  return runCapture(process.execPath, [mpmakeCli, ...args], { argv0: 'make', ...options });
}

/** A fresh private directory outside any test tree (reports, scratch). */
export function scratchDir(prefix = 'mpmake-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** How a run ended, in one word, for messages: `exit 2`, `SIGINT`. */
export function describeEnd(r: Pick<RunResult, 'code' | 'signal'>): string {
  return r.signal ?? `exit ${r.code}`;
}
