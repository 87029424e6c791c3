import { hostname, userInfo } from 'node:os';
import { randomBytes } from 'node:crypto';
import { readSecretFile } from '../protocol/secret-file.js';
import type { HostSpec } from '../client/host-list.js';
import { parseArgs } from '../coordinator/options.js';
import { HostListError, UsageError } from '../errors.js';

/** What `mpm status`, `mpm top` and `mpm exec` take from their command line. */
export interface RawClusterOptions {
  hosts?: string | undefined;
  secretFile?: string | undefined;
  /** The mpmake config file (else MPMAKE_CONFIG, else the default path). */
  config?: string | undefined;
  /** TLS to every agent, also on loopback (else MPMAKE_TLS, config `tls`; default off loopback). */
  tls?: boolean | undefined;
  /** Plaintext to agents off loopback (else MPMAKE_INSECURE, config `insecure`). */
  insecure?: boolean | undefined;
}

export interface ResolveClusterOptions {
  /** An empty host list is a usage error (default true). */
  requireHosts?: boolean;
}

/** Who this client is, as agents list it. */
export interface ClientIdentity {
  user: string;
  host: string;
  pid: number;
  build: string;
}

/** The cluster as mpmake would see it from here. */
export interface ClusterViewOptions {
  /** The agents (the client's own `localhost/N` slots are left out). */
  hosts: HostSpec[];
  secret: Buffer | undefined;
  /** Where the secret came from, to name when an agent refuses it. */
  secretFrom: string | undefined;
  connectTimeoutMs: number;
  heartbeatTimeoutMs: number;
  maxClockSkewMs: number;
  client: ClientIdentity;
}

/**
 * Resolves the host list and secret exactly as mpmake does (flags, then
 * MPMAKE_* environment, then the config file), by handing mpmake's own
 * parser the equivalent `--mp-*` flags, and reads the secret file.
 */
export async function resolveClusterOptions(
  raw: RawClusterOptions,
  env: NodeJS.ProcessEnv,
  { requireHosts = true }: ResolveClusterOptions = {},
): Promise<ClusterViewOptions> {
  const flags: string[] = [];
  if (raw.hosts !== undefined) flags.push(`--mp-hosts=${raw.hosts}`);
  if (raw.secretFile !== undefined) flags.push(`--mp-secret-file=${raw.secretFile}`);
  if (raw.config !== undefined) flags.push(`--mp-config=${raw.config}`);
  if (raw.tls === true) flags.push('--mp-tls');
  if (raw.insecure === true) flags.push('--mp-insecure');
  let parsed;
  try {
    parsed = parseArgs(flags, env, (name) => `--${name}`);
  } catch (err) {
    // A host list that does not parse is a usage error here (exit 2).
    if (err instanceof HostListError) throw new UsageError(err.message);
    throw err;
  }
  const { options } = parsed;
  const hosts = options.hosts.filter((h) => !h.local);
  if (raw.hosts !== undefined && raw.hosts.trim() === '') {
    throw new UsageError('--hosts is empty: list the agents, e.g. --hosts "nodeA:7543 nodeB:7543"');
  }
  if (hosts.length === 0 && requireHosts) {
    throw new UsageError(
      'no agents configured: pass --hosts "HOST[:PORT] ...", or set MPMAKE_HOSTS or "hosts" in the config file',
    );
  }
  const secret =
    options.secretFile === undefined
      ? undefined
      : await readSecretFile(options.secretFile, options.from['secret-file']);
  return {
    hosts,
    secret,
    secretFrom: options.from['secret-file'],
    connectTimeoutMs: options.connectTimeoutMs,
    heartbeatTimeoutMs: options.heartbeatTimeoutMs,
    maxClockSkewMs: options.maxClockSkewMs,
    client: {
      user: userName(env),
      host: hostname(),
      pid: process.pid,
      build: randomBytes(6).toString('hex'),
    },
  };
}

/** The login name; a uid without a passwd entry (containers) gets its number. */
function userName(env: NodeJS.ProcessEnv): string {
  try {
    return userInfo().username;
  } catch {
    return env['USER'] || env['LOGNAME'] || String(process.getuid?.() ?? 'unknown');
  }
}
