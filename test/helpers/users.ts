/**
 * Users made for a test (as root): unique names per run, marked by a
 * comment, removed with their home directories at teardown.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lookupUser, type RunAs } from '../../lib/agent/run-as.js';
import type { Teardown } from '../agent/client.js';

const COMMENT = 'mpmake test user';

export const has = (cmd: string): boolean =>
  spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
export const isRoot = process.geteuid?.() === 0;

/** Why users cannot be made here, or false. */
export function usersSkip(): string | false {
  if (!isRoot) return 'needs root (to make users and start an agent that drops to them)';
  if (!has('useradd') || !has('userdel')) return 'needs useradd and userdel';
  return false;
}

/** Removes a user this module made (checked by its comment), with its home. */
export function removeTestUser(name: string): void {
  const entry = spawnSync('getent', ['passwd', name]).stdout?.toString() ?? '';
  if (entry.includes(COMMENT)) spawnSync('userdel', ['-r', '-f', name], { stdio: 'ignore' });
}

/** Makes a user named `${prefix}${random}` with a home directory; removed at teardown. */
export async function makeTestUser(t: Teardown, prefix: string): Promise<RunAs> {
  const name = `${prefix}${randomBytes(3).toString('hex')}`.slice(0, 31);
  execFileSync('useradd', ['-m', '-c', COMMENT, '-s', '/bin/sh', name], { stdio: 'ignore' });
  t.teardown(() => removeTestUser(name));
  return lookupUser(name);
}

/**
 * runuser's arguments to run `argv` as `name` with exactly `env` (env -i):
 * nothing of the caller's environment reaches the user's process.
 */
export function runuserArgs(name: string, env: Record<string, string>, argv: string[]): string[] {
  return [
    '-u',
    name,
    '--',
    'env',
    '-i',
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    ...argv,
  ];
}
