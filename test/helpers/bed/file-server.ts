/**
 * The bed's shared file system: Debian's sshd on the file server (its own
 * config, host key and authorized key, made per run; listening on the
 * server's address only) serves the export directory over sftp, and each
 * host mounts it with sshfs at the same path, in its own mount namespace,
 * so each has its own FUSE caches.
 *
 * Cache options follow DESIGN.md ("Shared file systems"): sshfs's own cache
 * off (`dir_cache=no`), the kernel's attribute and lookup caches on
 * (`attr_timeout`, `entry_timeout`, 3 s like NFS's acregmin), negative
 * lookups not cached unless asked for.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SSHD } from './availability.js';
import type { Host, HostProcess } from './host.js';

export interface CacheOptions {
  /** Seconds the kernel trusts cached attributes and names; default 3. */
  attrTimeout?: number;
  /** Seconds a "no such file" answer is cached; default 0. */
  negativeTimeout?: number;
}

export interface SshKeys {
  dir: string;
  hostKey: string;
  clientKey: string;
  knownHosts: string;
  config: string;
}

/** Host key, client key, authorized_keys, known_hosts and sshd_config, in `dir`. */
export function makeSshFiles(dir: string, server: Host): SshKeys {
  mkdirSync(dir, { mode: 0o700 });
  const hostKey = join(dir, 'host_key');
  const clientKey = join(dir, 'client_key');
  for (const key of [hostKey, clientKey]) {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'mpmake-bed', '-f', key]);
  }
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${clientKey}.pub`), { mode: 0o600 });
  const knownHosts = join(dir, 'known_hosts');
  const hostPub = readFileSync(`${hostKey}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
  writeFileSync(knownHosts, `${server.address} ${hostPub}\n`, { mode: 0o600 });
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `ListenAddress ${server.address}:22`,
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'PidFile none',
      'MaxStartups 64',
      // No umask of its own: files get the mode the client's kernel asked for.
      'Subsystem sftp internal-sftp -u 000',
      // Commands (the bed's fence) run without root's ~/.bashrc: bash reads
      // it when run by sshd at SHLVL 0 only, and a machine's may hang.
      'SetEnv SHLVL=1',
      'LogLevel ERROR',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return { dir, hostKey, clientKey, knownHosts, config };
}

/** Starts sshd in the server host (which gets its own /run for sshd's /run/sshd). */
export async function startSshd(server: Host, keys: SshKeys): Promise<HostProcess> {
  await server.sh('mount -t tmpfs -o mode=755 bed-run /run && mkdir -m 755 /run/sshd');
  await server.sh(`${SSHD} -t -f ${keys.config}`);
  const sshd = await server.spawn(SSHD, ['-D', '-e', '-f', keys.config]);
  let log = '';
  sshd.child.stderr!.on('data', (b: Buffer) => (log += b.toString()));
  // Listening once a connection is accepted.
  const end = Date.now() + 10_000;
  for (;;) {
    try {
      await server.sh(`bash --norc --noprofile -c 'exec 3<>/dev/tcp/${server.address}/22'`);
      return sshd;
    } catch {
      if (Date.now() > end) throw new Error(`test bed: sshd does not listen: ${log.trim()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** ssh's options to reach the file server as the bed's client (sshfs, the fence). */
export function sshClientOptions(keys: SshKeys): string[] {
  return [
    `IdentityFile=${keys.clientKey}`,
    'IdentitiesOnly=yes',
    `UserKnownHostsFile=${keys.knownHosts}`,
    'StrictHostKeyChecking=yes',
    'BatchMode=yes',
  ];
}

export function sshfsOptions(keys: SshKeys, cache: CacheOptions): string {
  const attr = cache.attrTimeout ?? 3;
  return [
    ...sshClientOptions(keys),
    'dir_cache=no',
    `attr_timeout=${attr}`,
    `entry_timeout=${attr}`,
    `negative_timeout=${cache.negativeTimeout ?? 0}`,
  ].join(',');
}

function mountedIn(pid: number, path: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
      .split('\n')
      .some((l) => l.split(' ')[4] === path && l.includes(' fuse.sshfs '));
  } catch {
    return false;
  }
}

/** Mounts server:exportDir on `host` at `mountPath`; resolves once mounted. */
export async function mountShared(
  host: Host,
  server: Host,
  keys: SshKeys,
  exportDir: string,
  mountPath: string,
  cache: CacheOptions,
): Promise<HostProcess> {
  const sshfs = await host.spawn('sshfs', [
    '-f',
    '-F',
    '/dev/null',
    '-o',
    sshfsOptions(keys, cache),
    `root@${server.address}:${exportDir}`,
    mountPath,
  ]);
  let log = '';
  sshfs.child.stderr!.on('data', (b: Buffer) => (log += b.toString()));
  const end = Date.now() + 15_000;
  while (!mountedIn(sshfs.pid, mountPath)) {
    if (sshfs.child.exitCode !== null || Date.now() > end) {
      await sshfs.stop('SIGKILL');
      throw new Error(`test bed: sshfs on ${host.name} did not mount: ${log.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return sshfs;
}

/** Unmounts (sshfs -f then exits); kills sshfs if it does not. */
export async function unmountShared(
  host: Host,
  sshfs: HostProcess,
  mountPath: string,
): Promise<void> {
  await host.sh(`fusermount3 -u -z ${mountPath}`).catch(() => {});
  await sshfs.stop('SIGTERM', 2000);
}
