import { setTimeout as sleep } from 'node:timers/promises';
import { UsageError } from '../errors.js';
import { resolveClusterOptions, type RawClusterOptions } from './cluster-options.js';
import type { ExecResult } from './exec-command.js';
import { onePerNode } from './node-status.js';
import { queryCluster } from './status-command.js';
import { StatusConnection } from './status-connection.js';
import { TopScreen } from './top-screen.js';
import { topLines } from './top-view.js';

export const DEFAULT_TOP_INTERVAL_MS = 1000;
/** Signals that end `mpm top` (after restoring the terminal) by the same signal. */
const STOPPING: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export interface RawTopOptions extends RawClusterOptions {
  /** Refresh period, ms. */
  interval?: string | number | undefined;
}

function intervalMs(value: string | number | undefined): number {
  if (value === undefined) return DEFAULT_TOP_INTERVAL_MS;
  const text = String(value).trim();
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 100 || n > 3_600_000) {
    throw new UsageError(`--interval must be a number of milliseconds from 100 up, got ${text}`);
  }
  return n;
}

/**
 * `mpm top`: the cluster's nodes and, under each, the jobs running there
 * (which build, which command, for how long), redrawn in place every
 * interval on the alternate screen. `q` or Ctrl-C quits (status 0); SIGINT,
 * SIGTERM or SIGHUP quit and end by that signal. The terminal is restored
 * in every case. Without a terminal on stdout it prints one snapshot, and
 * resolves 1 when no node is up.
 */
export async function runTopCommand(
  raw: RawTopOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ExecResult> {
  const interval = intervalMs(raw.interval);
  const options = await resolveClusterOptions(raw, env);
  const { stdout, stdin } = process;
  if (!stdout.isTTY) {
    const nodes = await queryCluster(options);
    const lines = topLines(nodes, {
      nowMs: Date.now(),
      columns: Infinity,
      rows: Infinity,
      interactive: false,
    });
    await new Promise<void>((resolve) => stdout.write(`${lines.join('\n')}\n`, () => resolve()));
    return { code: nodes.some((n) => n.state === 'up') ? 0 : 1, signal: null };
  }

  const connections = options.hosts.map(
    (spec) =>
      new StatusConnection(spec, {
        secret: options.secret,
        client: options.client,
        timeoutMs: options.connectTimeoutMs,
      }),
  );
  const screen = new TopScreen(stdout, stdin);
  const stop = new AbortController();
  let quit: (result: ExecResult) => void = () => {};
  const quitting = new Promise<ExecResult>((resolve) => (quit = resolve));
  const onSignal = (signal: NodeJS.Signals): void => quit({ code: null, signal });
  const draw = (): void => {
    const lines = topLines(
      onePerNode(
        connections.map((c) => c.latest),
        options.client.build,
      ),
      {
        nowMs: Date.now(),
        columns: stdout.columns || 80,
        rows: stdout.rows || 24,
        interactive: true,
      },
    );
    screen.draw(lines);
  };
  let timer: NodeJS.Timeout | undefined;
  try {
    for (const s of STOPPING) process.on(s, onSignal);
    screen.enter((key) => {
      if (key === 'q' || key === 'Q' || key === '\x03' || key === '\x04')
        quit({ code: 0, signal: null });
    });
    stdout.on('resize', draw);
    draw();
    // Each node is asked on its own, so a slow or dead one holds up nobody.
    for (const c of connections) {
      void (async () => {
        while (!stop.signal.aborted) {
          await c.query();
          if (stop.signal.aborted) break;
          draw();
          await sleep(interval, undefined, { signal: stop.signal }).catch(() => {});
        }
      })();
    }
    timer = setInterval(draw, interval);
    return await quitting;
  } finally {
    stop.abort();
    clearInterval(timer);
    stdout.off('resize', draw);
    for (const s of STOPPING) process.off(s, onSignal);
    for (const c of connections) c.close();
    screen.leave();
  }
}
