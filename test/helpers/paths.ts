/**
 * Where things are, for tests and benchmarks compiled to dist/: the
 * repository root is found by walking up to mpmake's package.json, so the
 * same code works from test/ (ts) and dist/test/ (js).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(start: string): string {
  let dir = start;
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'mpmake') {
          return dir;
        }
      } catch {
        // not ours; keep walking
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no mpmake package.json above ${start}`);
    dir = parent;
  }
}

/** The repository root (holds package.json, fixtures/, dist/). */
export const repoRoot = findRoot(dirname(fileURLToPath(import.meta.url)));

/** The compiled mpmake command line. */
export const mpmakeCli = join(repoRoot, 'dist', 'cli', 'mpmake.js');

/** A fidelity case's pristine directory. */
export function fidelityCaseDir(name: string): string {
  return join(repoRoot, 'fixtures', 'fidelity', name);
}

/** A committed generated tree, e.g. `ctree-small`. */
export function fixtureTree(name: string): string {
  return join(repoRoot, 'fixtures', 'trees', name);
}
