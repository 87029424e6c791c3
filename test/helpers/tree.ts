/**
 * Directory trees as comparable values: every entry's type, permission bits,
 * size and content hash (symlinks: their target), keyed by relative path.
 * Times are left out: two builds never agree on them.
 */
import { createHash } from 'node:crypto';
import { cpSync, lstatSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';

/** relative path -> "file 0644 12 sha256:…" | "dir 0755" | "symlink -> target" */
export type TreeSnapshot = Record<string, string>;

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A file name for display: UTF-8 as is, any other byte as \\xNN. */
function displayName(name: Buffer): string {
  const text = name.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(name)) return text;
  return [...name]
    .map((b) =>
      b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`,
    )
    .join('');
}

export function snapshotTree(root: string): TreeSnapshot {
  const snap: TreeSnapshot = {};
  // Names are read as bytes: a file name need not be UTF-8.
  const walk = (dir: Buffer, rel: string): void => {
    const names = readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare);
    for (const name of names) {
      const path = rel ? `${rel}/${displayName(name)}` : displayName(name);
      const full = Buffer.concat([dir, Buffer.from('/'), name]);
      const st = lstatSync(full);
      const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
      if (st.isSymbolicLink()) {
        snap[path] = `symlink -> ${readlinkSync(full, 'utf8')}`;
      } else if (st.isDirectory()) {
        snap[path] = `dir ${mode}`;
        walk(full, path);
      } else if (st.isFile()) {
        snap[path] = `file ${mode} ${st.size} sha256:${sha256(readFileSync(full)).slice(0, 16)}`;
      } else {
        snap[path] = `other ${mode}`;
      }
    }
  };
  walk(Buffer.from(root), '');
  return snap;
}

/** Makes `dest` an exact copy of `source` (removing whatever was there). */
export function resetTree(source: string, dest: string): void {
  rmSync(dest, { recursive: true, force: true });
  cpSync(source, dest, { recursive: true });
}
