/**
 * Real `mpm agent` processes on the bed's nodes, listening on the node's
 * address, with the bed's secret; optionally under libfaketime (a skewed
 * clock), with TLS or `--allow`.
 */
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { repoRoot } from '../paths.js';
import { cleanEnv } from '../run.js';
import { faketimeLibrary } from './availability.js';
import type { Host, HostProcess } from './host.js';

export const AGENT_PORT = 7543;

export interface AgentOptions {
  /** Jobs at once; default 3. */
  slots?: number;
  /** libfaketime offset for the agent's clock, e.g. `+30s` or `-5m`. */
  clockOffset?: string;
  /** `--tls`. */
  tls?: boolean;
  /** `--allow CIDR` for each. */
  allow?: string[];
  /** `--id NAME`. */
  id?: string;
  /** More `mpm agent` arguments. */
  extraArgs?: string[];
}

export interface BedAgent {
  node: Host;
  /** `ADDRESS:PORT/SLOTS`, for MPMAKE_HOSTS. */
  hostSpec: string;
  /** The id it printed. */
  id: string;
  pid: number;
  /** Everything it logged on stderr so far. */
  log(): string;
  /** Whether it still runs (it may have been killed, or have died). */
  running(): boolean;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export async function startAgent(
  node: Host,
  secretFile: string,
  options: AgentOptions = {},
): Promise<BedAgent> {
  const slots = options.slots ?? 3;
  const args = [
    join(repoRoot, 'dist', 'cli', 'mpm.js'),
    'agent',
    '--listen',
    `${node.address}:${AGENT_PORT}`,
    '--slots',
    String(slots),
    '--secret-file',
    secretFile,
    '--exit-with-stdin',
    '--allow-root',
    ...(options.id !== undefined ? ['--id', options.id] : []),
    ...(options.tls ? ['--tls'] : []),
    ...(options.allow ?? []).flatMap((a) => ['--allow', a]),
    ...(options.extraArgs ?? []),
  ];
  let file = process.execPath;
  if (options.clockOffset !== undefined) {
    const lib = faketimeLibrary();
    if (!lib)
      throw new Error('test bed: libfaketime is not installed (Debian package libfaketime)');
    // Only the agent (and its jobs) get the skewed clock, not nsenter.
    args.unshift(
      `LD_PRELOAD=${lib}`,
      `FAKETIME=${options.clockOffset}`,
      'FAKETIME_DONT_FAKE_MONOTONIC=1',
      'FAKETIME_DONT_RESET=1',
      process.execPath,
    );
    file = 'env';
  }
  const proc: HostProcess = await node.spawn(file, args, { env: cleanEnv(), stdin: 'pipe' });
  let log = '';
  proc.child.stderr!.on('data', (b: Buffer) => (log += b.toString()));
  let exited = false;
  void proc.exited.then(() => (exited = true));
  const line = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: proc.child.stdout! });
    const timer = setTimeout(() => reject(new Error('no listening line within 60 s')), 60_000);
    lines.once('line', (l) => {
      clearTimeout(timer);
      proc.child.stdout!.resume();
      resolve(l);
    });
    void proc.exited.then(() => {
      clearTimeout(timer);
      reject(new Error('exited before listening'));
    });
  }).catch(async (err: Error) => {
    await proc.stop('SIGKILL');
    throw new Error(`test bed: agent on ${node.name}: ${err.message}; its stderr:\n${log.trim()}`);
  });
  const m = /^mpm agent listening on (\S+):(\d+) slots=(\d+) id=(.*)$/.exec(line);
  if (!m) {
    await proc.stop('SIGKILL');
    throw new Error(`test bed: agent on ${node.name} printed ${JSON.stringify(line)}`);
  }
  return {
    node,
    hostSpec: `${node.address}:${m[2]}/${m[3]}`,
    id: m[4]!,
    pid: proc.pid,
    log: () => log,
    running: () => !exited,
    stop: (signal) => proc.stop(signal),
  };
}
