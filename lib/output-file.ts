import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Files mpmake writes for the user (report, trace, SVG): whole or not at
 * all, and never through a link someone planted. The data goes to a new
 * temp file beside the target, created with O_EXCL|O_NOFOLLOW under an
 * unguessable name (so no symlink or existing file is ever opened), then
 * renamed over the target.
 */
const TEMP_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

function tempBeside(path: string): { tmp: string; fd: number } {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${randomBytes(8).toString('hex')}`);
  return { tmp, fd: openSync(tmp, TEMP_FLAGS, 0o666) };
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // never created, or gone
  }
}

/** Writes `data` to `path` atomically (see above); throws on failure, leaving nothing behind. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const { tmp, fd } = tempBeside(path);
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (err) {
    try {
      closeSync(fd);
    } catch {
      // closed already
    }
    unlinkQuietly(tmp);
    throw err;
  }
}

/**
 * Why `path` could not be written by {@link writeFileAtomic}, or undefined
 * when it can: its directory must exist and take a new file, and the path
 * must not be a directory. Tried for real (a temp file created and
 * removed), so permissions, read-only mounts and full quotas all show.
 */
export function outputPathProblem(path: string): string | undefined {
  if (path === '') return 'the file name is empty';
  try {
    if (statSync(path).isDirectory()) return `${path} is a directory`;
  } catch {
    // does not exist yet: fine
  }
  let made: { tmp: string; fd: number };
  try {
    made = tempBeside(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const dir = dirname(path);
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return `no such directory: ${dir}`;
    if (e.code === 'EACCES' || e.code === 'EPERM')
      return `cannot create files in ${dir} (${e.code})`;
    return `cannot create files in ${dir}: ${e.message}`;
  }
  closeSync(made.fd);
  unlinkQuietly(made.tmp);
  return undefined;
}
