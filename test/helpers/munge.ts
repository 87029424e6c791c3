/**
 * A munged for one test (or benchmark): a generated key (or one given, to
 * share between several daemons), its own socket, pid, log and seed files
 * in a fresh directory (0755, so the test's users reach the socket),
 * stopped by its pid at teardown. Clients reach it with
 * MPMAKE_AUTH=munge MPMAKE_MUNGE_SOCKET=<socket>; agents with
 * `--auth munge --munge-socket <socket>` (see mungeAgentArgs).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { MUNGED, startMunged as startMungedDaemon, type Munged } from '../../fixtures/munged.js';
import type { Teardown } from '../agent/client.js';
import { has } from './users.js';

export type { Munged };

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
 * Starts a munged (fixtures/munged.ts) with `keyFile`'s key (default: a new
 * random one), stopped by its pid at the test's teardown: several daemons
 * with one key are one MUNGE cluster (a node's, a client's).
 */
export async function startMunged(t: Teardown, opts: { keyFile?: string } = {}): Promise<Munged> {
  const munged = await startMungedDaemon(opts);
  t.teardown(() => munged.stop());
  return munged;
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
