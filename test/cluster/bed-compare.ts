/**
 * What the bed tests compare against: plain GNU make on a copy of the same
 * sources, at the SAME path as the bed's mount (in this process's mount
 * namespace that path is an ordinary local directory), so every path make
 * prints is the same.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Test } from 'tap';
import { generateFiles, type TreeFiles } from '../../fixtures/gen-tree.js';
import type { Bed } from '../helpers/cluster-bed.js';
import { readReport, type BuildReport } from '../helpers/fidelity.js';
import { cleanEnv, describeEnd, runMake, type RunResult } from '../helpers/run.js';
import { snapshotTree } from '../helpers/tree.js';

/**
 * A group of cases on the shared bed (bed.test.ts): registers its subtests
 * on `t`; each asks for its agents (`bed.useAgents`) and builds in
 * directories of its own.
 */
export type BedCases = (t: Test, bed: Bed) => Promise<void>;

/** The bed tests' C tree: 24 units, light enough for a 2-core machine. */
export function bedTree(): TreeFiles {
  return generateFiles('ctree', { units: 24, work: 4 });
}

export function writeFiles(dir: string, files: TreeFiles): void {
  for (const [path, text] of files) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
}

/**
 * Puts `files` in a fresh directory NAME on the server (new names: no host
 * has anything of it cached). Returns the directory on the mount.
 */
export function placeTree(bed: Bed, name: string, files: TreeFiles): string {
  writeFiles(join(bed.exportDir, name), files);
  return join(bed.mountPath, name);
}

/** Plain make in a local reference directory (same path as on the bed). */
export function plainMake(dir: string, args: string[]): Promise<RunResult> {
  return runMake(args, { cwd: dir, env: cleanEnv(), timeoutMs: 180_000 });
}

/** A plain make build of `files`, once, in the local directory NAME at the mount path. */
export interface Reference {
  name: string;
  result: RunResult;
}

export async function referenceBuild(
  bed: Bed,
  name: string,
  files: TreeFiles,
  args: string[],
): Promise<Reference> {
  const dir = join(bed.mountPath, name);
  writeFiles(dir, files);
  return { name, result: await plainMake(dir, args) };
}

function sortedLines(b: Buffer): string[] {
  return b.toString('latin1').split('\n').sort();
}

/**
 * Asserts an mpmake run on the bed, in NAME, ended as the reference
 * build: exit status, stdout lines (any order: -j), stderr (but lines
 * matching `allowedStderr`), and every file of the tree (the server's real
 * directory).
 */
export function sameAsPlain(
  t: Test,
  bed: Bed,
  name: string,
  mp: RunResult,
  reference: Reference,
  allowedStderr: RegExp[] = [],
): void {
  const plain = reference.result;
  t.equal(describeEnd(mp), describeEnd(plain), `mpmake ended as make did (${describeEnd(plain)})`);
  t.same(sortedLines(mp.stdout), sortedLines(plain.stdout), 'the same stdout lines');
  const stderr = mp.stderr
    .toString()
    .split('\n')
    .filter((l) => !allowedStderr.some((re) => re.test(l)))
    .join('\n');
  t.equal(stderr, plain.stderr.toString(), "otherwise make's stderr");
  t.same(
    snapshotTree(join(bed.exportDir, name)),
    snapshotTree(join(bed.mountPath, reference.name)),
    'the same files, bytes and modes as the local build',
  );
}

/** Where an mpmake run on the client writes its --mp-report (local disk, outside the tree). */
export function reportPath(bed: Bed, name: string): string {
  return join(bed.runDir, `${name}.report.json`);
}

export function readBedReport(bed: Bed, name: string): BuildReport {
  return readReport(reportPath(bed, name));
}
