/**
 * The fidelity harness: run a case with plain make, then the same case, in
 * the SAME directory reset to its pristine copy (paths show in make's
 * messages), with mpmake on a loopback cluster, and compare everything make
 * users can observe: stdout, stderr, how it ended, and every file it left
 * (path, bytes, mode).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { Cluster } from './cluster.js';
import {
  cleanEnv,
  describeEnd,
  runMake,
  runMpmake,
  type RunResult,
  type StdioMode,
} from './run.js';
import { resetTree, sha256, snapshotTree } from './tree.js';

export type CompareMode =
  /** Byte for byte. */
  | 'exact'
  /** The same lines, in any order (a -j build without -O). */
  | 'sorted-lines'
  /** -O: each target's lines in one block; the blocks in any order. */
  | 'output-sync';

export interface FidelityRun {
  /** Names the subtest; default: the args. No spaces (it becomes a directory name). */
  label?: string;
  /** make's arguments, given unchanged to both. */
  args: string[];
  stdio?: StdioMode;
  umask?: number;
  /** Added to the clean environment of both runs. */
  env?: Record<string, string>;
  compare?: CompareMode;
  /** Assert jobs.remote > 0 in mpmake's report. Default true. */
  expectRemote?: boolean;
  /**
   * mpmake options besides --mp-quiet, --mp-hosts, --mp-report. Default
   * ['--mp-local='], so every recipe line goes to an agent: a comparison of
   * lines run locally would prove little.
   */
  mpArgs?: string[];
  timeoutMs?: number;
}

/** Shape of --mp-report, as far as the tests rely on it. */
export interface BuildReport {
  version: number;
  exitCode: number | null;
  signal: string | null;
  wallMs: number;
  jobs: { total: number; remote: number; local: number; retried: number; failed: number };
  nodes: { id: string; address: string; slots: number; jobs: number }[];
  leftOut: { address: string; reason: string }[];
}

const SMALL_OUTPUT_BYTES = 64 * 1024;

function isUtf8(b: Buffer): boolean {
  return Buffer.from(b.toString('utf8'), 'utf8').equals(b);
}

/**
 * Compares two outputs byte for byte, readably: small UTF-8 output as text
 * (tap shows a diff), other small output as latin1 text, big output by
 * length and hash with the first differing offset.
 */
export function sameBytes(t: Test, actual: Buffer, expected: Buffer, what: string): void {
  if (actual.length <= SMALL_OUTPUT_BYTES && expected.length <= SMALL_OUTPUT_BYTES) {
    if (isUtf8(actual) && isUtf8(expected)) {
      t.equal(actual.toString('utf8'), expected.toString('utf8'), what);
    } else {
      t.equal(actual.toString('latin1'), expected.toString('latin1'), `${what} (bytes as latin1)`);
    }
    return;
  }
  let firstDiff = -1;
  const n = Math.min(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    if (actual[i] !== expected[i]) {
      firstDiff = i;
      break;
    }
  }
  if (firstDiff < 0 && actual.length !== expected.length) firstDiff = n;
  const context = (b: Buffer): string =>
    JSON.stringify(b.subarray(Math.max(0, firstDiff - 40), firstDiff + 40).toString('latin1'));
  t.same(
    { length: actual.length, sha256: sha256(actual) },
    { length: expected.length, sha256: sha256(expected) },
    firstDiff < 0
      ? `${what}: ${actual.length} bytes, same hash`
      : `${what}: first difference at byte ${firstDiff}: mpmake ${context(actual)} vs make ${context(expected)}`,
  );
}

function lines(b: Buffer): string[] {
  const text = b.toString('latin1');
  const all = text.split('\n');
  if (all[all.length - 1] === '') all.pop();
  return all;
}

/** Checks that each `[tag]` line group is contiguous; returns the sorted lines. */
function syncedBlocks(t: Test, out: Buffer, who: string, what: string): string[] {
  const seen = new Set<string>();
  let current: string | undefined;
  for (const line of lines(out)) {
    const tag = /^\[([^\]]+)\]/.exec(line)?.[1] ?? '(untagged)';
    if (tag !== current) {
      t.notOk(seen.has(tag), `${who} ${what}: output of ${tag} comes in one piece`);
      seen.add(tag);
      current = tag;
    }
  }
  return lines(out).sort();
}

/** Compares one output stream of two runs as `mode` says. */
export function compareStream(
  t: Test,
  mode: CompareMode,
  mp: Buffer,
  plain: Buffer,
  what: string,
): void {
  switch (mode) {
    case 'exact':
      sameBytes(t, mp, plain, what);
      break;
    case 'sorted-lines':
      t.same(lines(mp).sort(), lines(plain).sort(), `${what}: the same lines`);
      break;
    case 'output-sync':
      t.same(
        syncedBlocks(t, mp, 'mpmake', what),
        syncedBlocks(t, plain, 'make', what),
        `${what}: the same lines`,
      );
      break;
  }
}

export function readReport(path: string): BuildReport {
  return JSON.parse(readFileSync(path, 'utf8')) as BuildReport;
}

export interface FidelityResult {
  plain: RunResult;
  mp: RunResult;
  report: BuildReport | undefined;
  workDir: string;
}

/**
 * Runs one case both ways in `t`'s test directory and asserts they match.
 * `source` is the pristine case directory.
 */
export async function checkFidelity(
  t: Test,
  cluster: Cluster,
  source: string,
  run: FidelityRun,
): Promise<FidelityResult> {
  const base = t.testdir();
  const workDir = join(base, 'work');
  const reportDir = join(base, 'report');
  mkdirSync(reportDir, { recursive: true });
  const reportFile = join(reportDir, 'report.json');
  const common = {
    cwd: workDir,
    env: cleanEnv(run.env),
    stdio: run.stdio ?? 'separate',
    umask: run.umask,
    timeoutMs: run.timeoutMs ?? 120_000,
  };

  resetTree(source, workDir);
  const plain = await runMake(run.args, common);
  const plainTree = snapshotTree(workDir);

  resetTree(source, workDir);
  const mpArgs = [
    '--mp-quiet',
    `--mp-hosts=${cluster.hosts}`,
    `--mp-report=${reportFile}`,
    ...(run.mpArgs ?? ['--mp-local=']),
  ];
  const mp = await runMpmake([...mpArgs, ...run.args], common);
  const mpTree = snapshotTree(workDir);

  t.notOk(plain.timedOut, 'make finished in time');
  t.notOk(mp.timedOut, 'mpmake finished in time');
  t.equal(describeEnd(mp), describeEnd(plain), 'ends the same way');
  const mode = run.compare ?? 'exact';
  const merged = run.stdio === 'merged';
  compareStream(t, mode, mp.stdout, plain.stdout, merged ? 'stdout+stderr (one pipe)' : 'stdout');
  if (!merged) compareStream(t, mode, mp.stderr, plain.stderr, 'stderr');
  t.same(mpTree, plainTree, 'the same files, bytes and modes');

  let report: BuildReport | undefined;
  try {
    report = readReport(reportFile);
  } catch (err) {
    t.fail(`mpmake wrote a readable --mp-report: ${(err as Error).message}`);
  }
  if (report) {
    t.equal(report.version, 1, 'report version 1');
    if (plain.signal === null) t.equal(report.exitCode, plain.code, 'report has the exit status');
    if (run.expectRemote ?? true) {
      t.ok(
        report.jobs.remote > 0,
        `recipes ran on the agents (jobs: ${JSON.stringify(report.jobs)})`,
      );
    }
  }
  return { plain, mp, report, workDir };
}

/** One subtest per run of a case, named `case` or `case args…`. */
export function fidelityCase(
  t: Test,
  cluster: () => Cluster,
  name: string,
  source: string,
  runs: FidelityRun[],
): void {
  t.test(name, async (t) => {
    for (const run of runs) {
      const label = run.label ?? (run.args.join('_') || 'default');
      await t.test(label, async (t) => {
        await checkFidelity(t, cluster(), source, run);
      });
    }
  });
}
