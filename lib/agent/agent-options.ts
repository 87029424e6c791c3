import { realpath, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { isAbsolute } from 'node:path';
import { UsageError } from '../errors.js';
import { readSecretFile } from './secret-file.js';

export const DEFAULT_LISTEN = '127.0.0.1:7543';
export const DEFAULT_MAX_QUEUED_PER_CLIENT = 4096;

/** `mpm agent` options as they come from the command line, not yet checked. */
export interface RawAgentOptions {
  listen?: string | undefined;
  slots?: string | number | undefined;
  id?: string | undefined;
  secretFile?: string | undefined;
  insecure?: boolean | undefined;
  root?: string[] | string | undefined;
  maxQueuedPerClient?: string | number | undefined;
  /** Shut down when stdin reaches EOF: an agent started by a parent dies with it. */
  exitWithStdin?: boolean | undefined;
}

/** Validated agent options; everything the agent needs, nothing left to check. */
export interface AgentOptions {
  host: string;
  port: number;
  slots: number;
  /** Node id; undefined means `${hostname}:${port}`, known once listening. */
  id: string | undefined;
  /** The shared secret; undefined when clients need not authenticate. */
  secret: Buffer | undefined;
  /** Real paths of the directories a job's cwd must be under. */
  roots: string[];
  maxQueuedPerClient: number;
}

/** Splits `HOST:PORT` (or `[V6]:PORT`). */
export function parseListen(spec: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(spec);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new UsageError(`--listen must be HOST:PORT (e.g. 127.0.0.1:7543), got ${spec}`);
  }
  return { host: (m[1] ?? m[2])!, port };
}

/** Whether `host` is a loopback address, reachable only from this machine. */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  switch (isIP(host)) {
    case 4:
      return host.startsWith('127.');
    case 6:
      return host === '::1' || /^::ffff:127\./i.test(host);
    default:
      return false;
  }
}

function positiveInteger(value: string | number | undefined, option: string): number | undefined {
  if (value === undefined) return undefined;
  const text = String(value).trim();
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`${option} must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return n;
}

async function resolveRoot(dir: string): Promise<string> {
  if (!isAbsolute(dir)) throw new UsageError(`--root must be an absolute path, got ${dir}`);
  try {
    const real = await realpath(dir);
    if (!(await stat(real)).isDirectory()) throw new Error('not a directory');
    return real;
  } catch (err) {
    throw new UsageError(`--root ${dir}: ${(err as Error).message}`);
  }
}

/**
 * Checks every option once, naming the option in the error, and reads the
 * secret file. Refuses to listen beyond loopback without a secret unless
 * `--insecure`: an agent runs any command it is sent.
 */
export async function resolveAgentOptions(raw: RawAgentOptions): Promise<AgentOptions> {
  const { host, port } = parseListen(raw.listen ?? DEFAULT_LISTEN);
  const slots = positiveInteger(raw.slots, '--slots') ?? availableParallelism();
  const maxQueuedPerClient =
    positiveInteger(raw.maxQueuedPerClient, '--max-queued-per-client') ??
    DEFAULT_MAX_QUEUED_PER_CLIENT;
  if (raw.id !== undefined && raw.id.trim() === '') throw new UsageError('--id must not be empty');
  if (raw.secretFile === undefined && !raw.insecure && !isLoopbackHost(host)) {
    throw new UsageError(
      `refusing to listen on ${host}:${port}, which is not a loopback address, without ` +
        `--secret-file: anyone who can connect could run commands here. Pass ` +
        `--secret-file FILE, or --insecure on a network you trust`,
    );
  }
  const secret = raw.secretFile === undefined ? undefined : await readSecretFile(raw.secretFile);
  const rootArgs = raw.root === undefined ? ['/'] : [raw.root].flat();
  if (rootArgs.length === 0) throw new UsageError('--root needs a directory');
  const roots = await Promise.all(rootArgs.map(resolveRoot));
  return { host, port, slots, id: raw.id, secret, roots, maxQueuedPerClient };
}
