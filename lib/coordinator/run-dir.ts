import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * mpmake's private run directory (mode 0700, from mkdtemp): the shim named
 * `sh`, the shim socket and the jobserver FIFO live there. make splits SHELL
 * on spaces, so the path must have none. A TMPDIR that is no absolute
 * directory (make only complains about one, and uses /tmp) means /tmp.
 */
export function makeRunDir(): { path: string; remove(): void } {
  let base = tmpdir();
  if (/\s/.test(base) || !base.startsWith('/') || !isDirectory(base)) base = '/tmp';
  const path = mkdtempSync(join(base, 'mpmake-'));
  return {
    path,
    remove: () => rmSync(path, { recursive: true, force: true }),
  };
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
