/**
 * A munged for one test (or benchmark): a generated key (or one given, to
 * share between several daemons), its own socket, pid, log and seed files
 * in a fresh directory (0755, so the test's users reach the socket),
 * stopped by its pid at teardown. Clients reach it with
 * MPMAKE_AUTH=munge MPMAKE_MUNGE_SOCKET=<socket>; agents with
 * `--auth munge --munge-socket <socket>` (see mungeAgentArgs).
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Teardown } from '../agent/client.js';
import { has } from './users.js';

export interface Munged {
  socket: string;
  pid: number;
  /** The key file (mode 0600), to start more daemons of the same cluster. */
  keyFile: string;
}

const MUNGED = ['/usr/sbin/munged', '/sbin/munged'].find((p) => existsSync(p)) ?? 'munged';

/** Why MUNGE cannot be used here, or false. */
export function mungeSkip(): string | false {
  if (!has('munge') || !has('unmunge') || (!existsSync(MUNGED) && !has('munged'))) {
    return 'needs MUNGE (munged, munge, unmunge: apt install munge)';
  }
  return false;
}

/** `mpm agent` arguments for MUNGE authentication through `munged`. */
export function mungeAgentArgs(munged: Munged): string[] {
  return ['--auth', 'munge', '--munge-socket', munged.socket];
}

/** A client's environment for MUNGE authentication through `munged`. */
export function mungeClientEnv(munged: Munged): Record<string, string> {
  return { MPMAKE_AUTH: 'munge', MPMAKE_MUNGE_SOCKET: munged.socket };
}

/**
 * Starts a munged with `keyFile`'s key (default: a new random one): several
 * daemons with one key are one MUNGE cluster (a node's, a client's).
 */
export async function startMunged(t: Teardown, opts: { keyFile?: string } = {}): Promise<Munged> {
  const dir = mkdtempSync(join(tmpdir(), 'mpm-munged-'));
  chmodSync(dir, 0o755);
  const keyFile = join(dir, 'munge.key');
  writeFileSync(keyFile, opts.keyFile ? readFileSync(opts.keyFile) : randomBytes(1024), {
    mode: 0o600,
  });
  const socket = join(dir, 'munge.socket');
  const args = [
    '--foreground',
    '--force',
    `--key-file=${keyFile}`,
    `--socket=${socket}`,
    `--pid-file=${join(dir, 'munged.pid')}`,
    `--log-file=${join(dir, 'munged.log')}`,
    `--seed-file=${join(dir, 'munged.seed')}`,
  ];
  const child = spawn(MUNGED, args, { stdio: 'ignore' });
  const pid = child.pid!;
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(pid, 'SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const deadline = Date.now() + 10_000;
  while (spawnSync('munge', ['-n', '-S', socket], { stdio: 'ignore' }).status !== 0) {
    if (child.exitCode !== null || Date.now() > deadline) {
      const log = existsSync(join(dir, 'munged.log'))
        ? readFileSync(join(dir, 'munged.log'), 'utf8')
        : '';
      throw new Error(`munged did not start: ${log.slice(-500)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { socket, pid, keyFile };
}

/** A credential for `payload` made as `user` (by name), from `munged`. */
export function mungeAs(munged: Munged, user: string, payload: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('runuser', ['-u', user, '--', 'munge', '-S', munged.socket], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.on('close', (code) =>
      code === 0 ? resolve(out.trim()) : reject(new Error(`munge as ${user} exited ${code}`)),
    );
    child.stdin.end(payload);
  });
}
