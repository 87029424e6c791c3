import { realpath, stat } from 'node:fs/promises';
import { isAbsolute, sep } from 'node:path';
import type { JobMessage, WireText } from '../protocol/messages.js';
import type { Refusal } from '../protocol/refusal.js';
import { SHELL_NAME } from './job-command.js';

/** Limit on a job's environment, names and values together. */
export const MAX_ENV_BYTES = 1024 * 1024;
/**
 * Limits on a job's argv, entries and bytes (each string with its NUL):
 * what Linux's exec takes with the usual 8 MiB stack (ARG_MAX, 2 MiB for
 * argv and environment together), so a job over them could never start.
 */
export const MAX_ARGV_ENTRIES = 128 * 1024;
export const MAX_ARGV_BYTES = 2 * 1024 * 1024;
/** Limits on a tty job's terminal size. */
const MAX_TTY_SIDE = 10_000;

const hasNul = (s: WireText): boolean => (typeof s === 'string' ? s.includes('\0') : s.includes(0));
const byteLength = (s: WireText): number =>
  typeof s === 'string' ? Buffer.byteLength(s) : s.length;
/** Bytes of `texts`, each with the NUL that ends it in exec. */
const textBytes = (texts: readonly WireText[]): number =>
  texts.reduce((n, t) => n + byteLength(t) + 1, 0);

/**
 * What a waiting job costs the agent, roughly: the bytes of its argv,
 * environment and cwd (held until it starts).
 */
export function jobBytes(job: JobMessage): number {
  let bytes = textBytes(job.argv) + byteLength(job.cwd);
  for (const [name, value] of Object.entries(job.env))
    bytes += byteLength(name) + byteLength(value) + 2;
  return bytes;
}

/**
 * Why a job must be refused on its face (before touching the file system),
 * or undefined. Strings with NUL bytes cannot reach exec, so they are
 * refused here rather than failing inside spawn.
 */
export function jobRefusal(job: JobMessage): string | undefined {
  if (job.argv.length > MAX_ARGV_ENTRIES) {
    return `argv has ${job.argv.length} entries, over the limit of ${MAX_ARGV_ENTRIES}`;
  }
  const argvBytes = textBytes(job.argv);
  if (argvBytes > MAX_ARGV_BYTES) {
    return `argv is ${argvBytes} bytes, over the limit of ${MAX_ARGV_BYTES}`;
  }
  if (job.argv.some(hasNul)) return 'argv contains a NUL byte';
  if (hasNul(job.cwd)) return 'cwd contains a NUL byte';
  if (job.produces?.some(hasNul)) return 'produces contains a NUL byte';
  if (!Number.isInteger(job.umask) || job.umask < 0 || job.umask > 0o777) {
    return `umask ${job.umask} is not between 0 and 0777`;
  }
  if (job.tty !== undefined) {
    const { cols, rows } = job.tty;
    if (!(cols >= 1 && cols <= MAX_TTY_SIDE && rows >= 1 && rows <= MAX_TTY_SIDE)) {
      return `tty size ${cols}x${rows} is out of range`;
    }
  }
  let envBytes = 0;
  for (const [name, value] of Object.entries(job.env)) {
    if (name === '' || name.includes('=') || hasNul(name) || hasNul(value)) {
      return `invalid environment variable name or value: ${JSON.stringify(name).slice(0, 60)}`;
    }
    if (typeof value !== 'string' && !SHELL_NAME.test(name)) {
      return `environment variable ${JSON.stringify(name).slice(0, 60)} has a non-UTF-8 value and a name sh cannot export`;
    }
    envBytes += byteLength(name) + byteLength(value) + 2;
  }
  if (envBytes > MAX_ENV_BYTES) {
    return `environment is ${envBytes} bytes, over the limit of ${MAX_ENV_BYTES}`;
  }
  return undefined;
}

/** Whether the real path `dir` is `root` or below it. */
export function isUnder(dir: string, root: string): boolean {
  return root === sep || dir === root || dir.startsWith(root + sep);
}

/**
 * Why `cwd` cannot be a job's directory here, or undefined: it must be an
 * existing directory whose real path is under one of the agent's roots (the
 * real path, so a symlink cannot lead out of them). `what` names the
 * directory in the reason.
 */
export async function cwdRefusal(
  cwd: string,
  roots: readonly string[],
  what = 'cwd',
): Promise<Refusal | undefined> {
  if (!isAbsolute(cwd))
    return { kind: 'invalid-job', message: `${what} ${cwd} is not an absolute path` };
  let real: string;
  try {
    real = await realpath(cwd);
    if (!(await stat(real)).isDirectory()) {
      return { kind: 'no-cwd', message: `${what} ${cwd} is not a directory on this node` };
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      return {
        kind: 'no-cwd',
        message: `no such directory: ${cwd} — does this node see the same file system?`,
      };
    }
    const kind = code === 'EACCES' || code === 'EPERM' ? 'permission' : 'no-cwd';
    return { kind, message: `${what} ${cwd}: ${(err as Error).message}` };
  }
  if (!roots.some((root) => isUnder(real, root))) {
    return {
      kind: 'outside-roots',
      message: `${what} ${cwd} is outside this agent's --root directories (${roots.join(', ')})`,
    };
  }
  return undefined;
}
