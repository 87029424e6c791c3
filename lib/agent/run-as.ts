import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { UsageError } from '../errors.js';

const run = promisify(execFile);

/** Most supplementary groups passed to the job launcher (it refuses more). */
export const MAX_GROUPS = 1024;

/** The unprivileged user an agent started as root runs its jobs as (`--user`). */
export interface RunAs {
  name: string;
  uid: number;
  gid: number;
  /** Supplementary groups, as the system's group database lists them for the user. */
  groups: number[];
  /**
   * The launcher calls initgroups(3) for the user (with `gid`) instead of
   * taking `groups`: for users who authenticated themselves (MUNGE).
   */
  initgroups?: boolean;
}

/**
 * Looks `name` (or a numeric uid) up the way login does, through `id(1)`,
 * so users from LDAP or other NSS sources work too.
 */
export async function lookupUser(name: string): Promise<RunAs> {
  if (name.trim() === '' || name.startsWith('-')) {
    throw new UsageError(`--user must name a user, got ${JSON.stringify(name)}`);
  }
  const ask = async (flag: string): Promise<string> => {
    const { stdout } = await run('id', [flag, name], { env: { ...process.env, LC_ALL: 'C' } });
    return stdout.trim();
  };
  let out: string[];
  try {
    out = await Promise.all(['-un', '-u', '-g', '-G'].map(ask));
  } catch (err) {
    const why = (err as { stderr?: string }).stderr?.trim() || (err as Error).message;
    throw new UsageError(`--user ${name}: no such user (${why})`);
  }
  const [user, uid, gid, groups] = out as [string, string, string, string];
  const ids = [uid, gid, ...groups.split(/\s+/).filter(Boolean)].map(Number);
  if (!ids.every((n) => Number.isSafeInteger(n) && n >= 0 && n < 2 ** 32)) {
    throw new UsageError(`--user ${name}: id(1) gave an unexpected answer`);
  }
  const [u, g, ...rest] = ids as [number, number, ...number[]];
  const supplementary = [...new Set([g, ...rest])];
  if (supplementary.length > MAX_GROUPS) {
    throw new UsageError(`--user ${name} is in more than ${MAX_GROUPS} groups`);
  }
  return { name: user, uid: u, gid: g, groups: supplementary };
}

/**
 * Why `path` could be replaced by someone other than root, or undefined:
 * the job launcher runs as root for a moment before it drops to `--user`,
 * so it, and every directory above it, must be owned by root and writable
 * by nobody else.
 */
export async function unsafePathReason(path: string): Promise<string | undefined> {
  for (let p = path; ; p = dirname(p)) {
    const info = await stat(p);
    if (info.uid !== 0) return `${p} is owned by uid ${info.uid}, not root`;
    // A sticky directory (/tmp) lets nobody but root replace root's entries.
    const sticky = p !== path && info.isDirectory() && (info.mode & 0o1000) !== 0;
    if ((info.mode & 0o022) !== 0 && !sticky) {
      return `${p} is writable by group or others (mode ${(info.mode & 0o7777).toString(8)})`;
    }
    if (dirname(p) === p) return undefined;
  }
}
