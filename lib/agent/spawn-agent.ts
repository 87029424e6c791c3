import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { localSecret } from './local-secret.js';
import { packageRoot } from './package-root.js';

/** An `mpm agent` running as a child of this process, on loopback. */
export interface LocalAgent {
  port: number;
  host: string;
  id: string;
  pid: number;
  /** The secret file the agent listens with; undefined when it has none. */
  secretFile: string | undefined;
  /** `HOST:PORT/SLOTS`, as a host list entry. */
  hostSpec: string;
  process: ChildProcess;
  /** Signals the agent (default SIGTERM); resolves once it has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface SpawnLocalAgentOptions {
  slots: number;
  id?: string;
  /**
   * The agent's secret file; default this process's throwaway secret
   * ({@link localSecret}); false: no secret (for tests of that mode only).
   */
  secretFile?: string | false;
  /** HOST:PORT; default 127.0.0.1:0 (a free port). */
  listen?: string;
  extraArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /** A command the agent runs under (`prlimit …`, `sh -c '…; exec "$@"' sh`): tests. */
  wrap?: string[];
  /** How long it may take to print its listening line; default {@link START_TIMEOUT_MS}. */
  startTimeoutMs?: number;
}

/**
 * How long an agent may take to print its listening line, by default. A
 * healthy agent listens within a second or two, but on a loaded machine
 * (a 2-core test machine at load 20) Node alone can take over 10 s to
 * start: the bound is for an agent that hangs, not for a slow one.
 */
export const START_TIMEOUT_MS = 60_000;
/** How much of the agent's stderr is kept for error messages. */
const STDERR_TAIL_BYTES = 4096;

const LISTENING = /^mpm agent listening on (\[[^\]]+\]|[^\s:]+):(\d+) slots=(\d+) id=(.*)$/;

/**
 * Starts `node dist/cli/mpm.js agent` as a child (for tests, the demo and
 * benchmarks) and resolves once it listens, with the port it printed. The
 * agent shuts down (killing its jobs) when this process exits. The
 * agent's stderr goes to ours when MPMAKE_TRACE is set; otherwise its tail
 * is kept for the error when the agent fails to start.
 */
export function spawnLocalAgent(opts: SpawnLocalAgentOptions): Promise<LocalAgent> {
  const extra = opts.extraArgs ?? [];
  // Other local users can connect to loopback too: with no secret, they
  // could run commands as us (as root, under a root parent).
  const secretFile =
    opts.secretFile === false ? undefined : (opts.secretFile ?? localSecret().path);
  // A child agent has its parent's privileges, no more: under a root
  // parent (a container's test run) it may run jobs as root, unless the
  // caller chose a --user (or --auth munge: each client's own user).
  const asRoot =
    process.geteuid?.() === 0 &&
    !extra.includes('--user') &&
    !extra.includes('--auth') &&
    !extra.includes('--allow-root');
  const args = [
    join(packageRoot(), 'dist', 'cli', 'mpm.js'),
    'agent',
    '--listen',
    opts.listen ?? '127.0.0.1:0',
    '--slots',
    String(opts.slots),
    ...(opts.id !== undefined ? ['--id', opts.id] : []),
    ...(secretFile !== undefined ? ['--secret-file', secretFile] : []),
    // The agent holds the read end of a pipe from us: if we die, even by
    // SIGKILL, it sees EOF and shuts down, killing its jobs.
    '--exit-with-stdin',
    ...(asRoot ? ['--allow-root'] : []),
    ...extra,
  ];
  const wrap = opts.wrap ?? [];
  const child = spawn(
    wrap[0] ?? process.execPath,
    [...wrap.slice(1), ...(wrap.length ? [process.execPath] : []), ...args],
    {
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  // Never written; must not keep our event loop alive.
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  child.stdin!.on('error', () => {});
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });

  let stderrTail = '';
  const passStderr = Boolean(process.env['MPMAKE_TRACE']);
  child.stderr!.on('data', (chunk: Buffer) => {
    if (passStderr) process.stderr.write(chunk);
    stderrTail = (stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES);
  });

  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };

  return new Promise<LocalAgent>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const fail = (why: string): void => {
      cleanup();
      void stop('SIGKILL');
      const tail = stderrTail.trim();
      reject(new Error(`mpm agent ${why}${tail ? `; its stderr:\n${tail}` : ''}`));
    };
    // 'close' rather than 'exit': by then the last of stderr has arrived.
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      fail(`exited (${signal ?? `status ${code}`}) before listening`);
    };
    const onError = (err: Error): void => fail(`could not be started: ${err.message}`);
    const timeoutMs = opts.startTimeoutMs ?? START_TIMEOUT_MS;
    const timer = setTimeout(() => {
      const load = loadavg()[0]!.toFixed(1);
      fail(
        `printed no listening line within ${timeoutMs / 1000} s: it hangs, or this machine ` +
          `is too busy to start it (load average ${load} on ${availableParallelism()} CPUs)`,
      );
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      child.off('close', onExit);
      child.off('error', onError);
      lines.off('line', onLine);
    };
    const onLine = (line: string): void => {
      const m = LISTENING.exec(line);
      if (!m) return fail(`printed an unexpected first line: ${JSON.stringify(line)}`);
      cleanup();
      // Keep draining stdout so the agent never blocks on it.
      child.stdout!.resume();
      const host = m[1]!.replace(/^\[|\]$/g, '');
      const port = Number(m[2]);
      resolve({
        port,
        host,
        id: m[4]!,
        pid: child.pid!,
        secretFile,
        hostSpec: `${m[1]}:${port}/${m[3]}`,
        process: child,
        stop,
      });
    };
    lines.on('line', onLine);
    child.once('close', onExit);
    child.once('error', onError);
  });
}
