import { realpath, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { isAbsolute } from 'node:path';
import { UsageError } from '../errors.js';
import { AllowList, LOOPBACK_NETWORKS } from './allow-list.js';
import { nativeLauncher } from './job-command.js';
import { DEFAULT_MAX_HANDSHAKES } from './pending-connections.js';
import { lookupUser, unsafePathReason, type RunAs } from './run-as.js';
import { DEFAULT_MUNGE_SOCKET } from '../protocol/munge.js';
import { readSecretFile } from '../protocol/secret-file.js';
import { isLoopbackHost } from '../protocol/tls.js';

export const DEFAULT_LISTEN = '127.0.0.1:7543';
export const DEFAULT_MAX_QUEUED_PER_CLIENT = 4096;
/** Bytes (argv, environment, cwd) of one client's waiting jobs, at most. */
export const DEFAULT_MAX_QUEUED_BYTES_PER_CLIENT = 32 * 1024 * 1024;
/** Bytes of all clients' waiting jobs together, at most. */
export const DEFAULT_MAX_QUEUED_BYTES = 128 * 1024 * 1024;

/** `mpm agent` options as they come from the command line, not yet checked. */
export interface RawAgentOptions {
  listen?: string | undefined;
  slots?: string | number | undefined;
  id?: string | undefined;
  secretFile?: string | undefined;
  insecure?: boolean | undefined;
  root?: string[] | string | undefined;
  maxQueuedPerClient?: string | number | undefined;
  maxQueuedBytesPerClient?: string | number | undefined;
  maxQueuedBytes?: string | number | undefined;
  /** Connections still authenticating, in all. */
  maxUnauthenticated?: string | number | undefined;
  /** Shut down when stdin reaches EOF: an agent started by a parent dies with it. */
  exitWithStdin?: boolean | undefined;
  /** TLS on every connection, keyed by the secret. */
  tls?: boolean | undefined;
  /** Client networks (CIDR) allowed to connect. */
  allow?: string[] | string | undefined;
  /** Run jobs as this user (the agent starts as root). */
  user?: string | undefined;
  /** Allow running jobs as root. */
  allowRoot?: boolean | undefined;
  /** How clients authenticate: `secret` (default) or `munge`. */
  auth?: string | undefined;
  /** With munge: the lowest uid accepted (root aside, which needs allowRoot). */
  minUid?: string | number | undefined;
  /** With munge: munged's socket. */
  mungeSocket?: string | undefined;
}

/** `--min-uid`'s default: the first uid Debian gives a person. */
export const DEFAULT_MIN_UID = 1000;

/** `--auth munge`: each client proves its uid with a MUNGE credential; its jobs run as it. */
export interface MungeMode {
  /** The lowest uid whose jobs run here (root aside: `--allow-root`). */
  minUid: number;
  /** munged's socket. */
  socket: string;
}

/** Validated agent options; everything the agent needs, nothing left to check. */
export interface AgentOptions {
  host: string;
  port: number;
  slots: number;
  /** Node name (`--name`); undefined: host name and listen address (defaultName). */
  id: string | undefined;
  /** The shared secret; undefined when clients need not authenticate. */
  secret: Buffer | undefined;
  /** Real paths of the directories a job's cwd must be under. */
  roots: string[];
  maxQueuedPerClient: number;
  /** Byte budgets of waiting jobs: one client's, and everyone's together. */
  maxQueuedBytesPerClient: number;
  maxQueuedBytes: number;
  /** Connections still authenticating, at most (the oldest are closed beyond it). */
  maxHandshakes: number;
  /** TLS-PSK on every connection (needs `secret`); off when absent. */
  tls?: boolean;
  /** Listening beyond loopback without TLS (`--insecure`): warned about at start. */
  plaintextOffLoopback?: boolean;
  /** Networks clients may connect from; absent = any. */
  allow?: AllowList | undefined;
  /** Jobs run as this user; absent = as the agent's own user. */
  runAs?: RunAs | undefined;
  /** `--allow-root`: jobs may run as root. */
  allowRoot?: boolean;
  /** `--auth munge`; absent: the shared secret (or nothing) authenticates. */
  munge?: MungeMode | undefined;
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

export { isLoopbackHost };

function positiveInteger(value: string | number | undefined, option: string): number | undefined {
  if (value === undefined) return undefined;
  const text = String(value).trim();
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`${option} must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** A byte count: an integer, optionally with K, M or G (binary: 64M is 64 MiB). */
function byteCount(value: string | number | undefined, option: string): number | undefined {
  if (value === undefined) return undefined;
  const text = String(value).trim();
  const m = /^(\d+)\s*([KMG]?)(?:i?B)?$/i.exec(text);
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[(m?.[2] ?? '').toUpperCase()];
  const n = m && unit !== undefined ? Number(m[1]) * unit : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(
      `${option} must be a positive number of bytes (e.g. 67108864 or 64M), got ${JSON.stringify(value)}`,
    );
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
  const maxQueuedBytesPerClient =
    byteCount(raw.maxQueuedBytesPerClient, '--max-queued-bytes-per-client') ??
    DEFAULT_MAX_QUEUED_BYTES_PER_CLIENT;
  const maxQueuedBytes =
    byteCount(raw.maxQueuedBytes, '--max-queued-bytes') ?? DEFAULT_MAX_QUEUED_BYTES;
  const maxHandshakes =
    positiveInteger(raw.maxUnauthenticated, '--max-unauthenticated') ?? DEFAULT_MAX_HANDSHAKES;
  if (raw.id !== undefined && raw.id.trim() === '')
    throw new UsageError('--name must not be empty');
  const munge = mungeMode(raw);
  if (munge !== undefined && raw.user !== undefined) {
    throw new UsageError(
      '--user does not go with --auth munge: jobs run as the user each client proves to be',
    );
  }
  if (
    munge !== undefined &&
    raw.secretFile === undefined &&
    !raw.insecure &&
    !isLoopbackHost(host)
  ) {
    throw new UsageError(
      `refusing to listen on ${host}:${port}, which is not a loopback address, without ` +
        '--secret-file: --auth munge proves who each client is, but the jobs and their ' +
        'environments would cross the network in plaintext. Pass --secret-file FILE (TLS is ' +
        'keyed by it), or --insecure on a network you trust',
    );
  }
  if (
    munge === undefined &&
    raw.secretFile === undefined &&
    !raw.insecure &&
    !isLoopbackHost(host)
  ) {
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
  if (raw.tls && secret === undefined) {
    throw new UsageError('--tls needs --secret-file: the TLS key is derived from the secret');
  }
  // Off loopback, TLS is the default: a plaintext handshake can be relayed
  // or read on the way. `--insecure` (or --no-tls with it) opts out.
  const loopback = isLoopbackHost(host);
  if (raw.tls === false && secret !== undefined && !loopback && !raw.insecure) {
    throw new UsageError(
      `--no-tls on ${host}:${port}, which is not a loopback address: anyone on the network ` +
        'path could read and change jobs. Drop --no-tls (TLS is the default off loopback), ' +
        'or add --insecure on a network you trust',
    );
  }
  const tls = raw.tls ?? (secret !== undefined && !loopback && !raw.insecure);
  const allowArgs = raw.allow === undefined ? [] : [raw.allow].flat();
  // Without a secret anyone who connects may run commands: loopback only, unless told.
  const allow =
    allowArgs.length > 0
      ? new AllowList(allowArgs)
      : secret === undefined && munge === undefined
        ? new AllowList(LOOPBACK_NETWORKS)
        : undefined;
  const runAs = raw.user === undefined ? undefined : await lookupUser(raw.user);
  return {
    host,
    port,
    slots,
    id: raw.id,
    secret,
    roots,
    maxQueuedPerClient,
    maxQueuedBytesPerClient,
    maxQueuedBytes,
    maxHandshakes,
    tls,
    plaintextOffLoopback: !tls && !loopback,
    allow,
    runAs,
    allowRoot: raw.allowRoot === true,
    munge,
  };
}

/** `--auth`, `--min-uid`, `--munge-socket`, checked. */
function mungeMode(raw: RawAgentOptions): MungeMode | undefined {
  const auth = raw.auth ?? 'secret';
  if (auth !== 'secret' && auth !== 'munge') {
    throw new UsageError(`--auth must be secret or munge, got ${JSON.stringify(raw.auth)}`);
  }
  if (auth !== 'munge') {
    if (raw.minUid !== undefined || raw.mungeSocket !== undefined) {
      throw new UsageError('--min-uid and --munge-socket go with --auth munge');
    }
    return undefined;
  }
  const minUidText = raw.minUid === undefined ? undefined : String(raw.minUid).trim();
  if (
    minUidText !== undefined &&
    (!/^\d{1,10}$/.test(minUidText) || Number(minUidText) >= 2 ** 32)
  ) {
    throw new UsageError(`--min-uid must be a uid (0 or more), got ${JSON.stringify(raw.minUid)}`);
  }
  if (raw.mungeSocket !== undefined && !isAbsolute(raw.mungeSocket)) {
    throw new UsageError(`--munge-socket must be an absolute path, got ${raw.mungeSocket}`);
  }
  return {
    minUid: minUidText === undefined ? DEFAULT_MIN_UID : Number(minUidText),
    socket: raw.mungeSocket ?? DEFAULT_MUNGE_SOCKET,
  };
}

/**
 * Refuses to run jobs as root unless told to: started as root, an agent
 * needs `--user NAME` (jobs run as that user) or `--allow-root`. Returns
 * the options with `runAs` dropped when it names the agent's own user.
 * `euid` is the agent's effective uid.
 */
export async function checkRunAs(options: AgentOptions, euid: number): Promise<AgentOptions> {
  const { runAs } = options;
  if (options.munge !== undefined) return checkMunge(options, euid);
  if (runAs === undefined) {
    if (euid === 0 && !options.allowRoot) {
      throw new UsageError(
        'refusing to run as root without --user: every job would run as root. ' +
          'Pass --user NAME to run jobs as that unprivileged user, or --allow-root to run them as root',
      );
    }
    return options;
  }
  if (runAs.uid === 0 && !options.allowRoot) {
    throw new UsageError(
      `--user ${runAs.name} is root: pick an unprivileged user, or pass --allow-root`,
    );
  }
  if (runAs.uid === euid) return { ...options, runAs: undefined };
  if (euid !== 0) {
    throw new UsageError(
      `--user ${runAs.name} needs the agent to start as root (it runs as uid ${euid})`,
    );
  }
  const launcher = nativeLauncher();
  if (launcher === undefined) {
    throw new UsageError(
      '--user needs the job launcher build/mpmake-exec (run `make build`): ' +
        "it is what drops to the user's uid, gid and groups",
    );
  }
  const unsafe = await unsafePathReason(launcher);
  if (unsafe !== undefined) {
    throw new UsageError(
      `--user: the job launcher runs as root before it drops to ${runAs.name}, but ${unsafe}; ` +
        'install mpmake where only root can write',
    );
  }
  return options;
}

/**
 * `--auth munge`: jobs run as each client's own uid, so a root agent needs
 * a launcher only root can replace (as for --user). Not as root, the agent
 * takes only its own uid. (munged is asked over its socket at each
 * handshake; it may start after the agent.)
 */
async function checkMunge(options: AgentOptions, euid: number): Promise<AgentOptions> {
  if (euid !== 0) return options;
  const launcher = nativeLauncher();
  if (launcher === undefined) {
    throw new UsageError(
      '--auth munge as root needs the job launcher build/mpmake-exec (run `make build`): ' +
        "it is what drops to each user's uid, gid and groups",
    );
  }
  const unsafe = await unsafePathReason(launcher);
  if (unsafe !== undefined) {
    throw new UsageError(
      `--auth munge: the job launcher runs as root before it drops to each user, but ${unsafe}; ` +
        'install mpmake where only root can write',
    );
  }
  return options;
}
