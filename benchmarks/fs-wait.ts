/**
 * What "nothing stale" costs (issue 11), on the cluster test bed: a file
 * server, a client and three nodes in network namespaces, the tree on
 * sshfs with NFS-like caches (attr/entry 3 s). The C tree is built by
 * `mpmake -j9` with --mp-fs-wait at its default and at 0 (off),
 * interleaved, each run in a fresh directory: a clean build, then (past
 * the caches) one incremental round that edits a unit, and (past the caches
 * again) `make -q` on the client. Reports the wall times, the visibility lag
 * (p50/p99/max, retries, files past the bound: from --mp-report), and
 * whether make -q was satisfied (with the wait off, the relink may be
 * skipped: the bug this prevents).
 *
 * Needs root, namespaces, FUSE, sshfs and sshd (as the bed tests).
 *
 *   node dist/benchmarks/fs-wait.js [--units 16] [--runs 2]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateFiles } from '../fixtures/gen-tree.js';
import type { BuildReport } from '../lib/coordinator/build-report.js';
import { DEFAULT_FS_WAIT_MS } from '../lib/coordinator/options.js';
import { bedMissing, startBed, type Bed } from '../test/helpers/cluster-bed.js';
import { writeFiles } from '../test/cluster/bed-compare.js';
import {
  delay,
  fmt,
  isMain,
  machine,
  markdownTable,
  median,
  numberOptions,
  publishResults,
} from './common.js';

export interface FsWaitOptions {
  units: number;
  runs: number;
}

export const FS_WAIT_DEFAULTS: FsWaitOptions = { units: 16, runs: 2 };

/** Past the bed's 3 s attribute and lookup caches. */
const CACHE_EXPIRY_MS = 3500;

interface Sample {
  mode: 'default' | 'off';
  cleanMs: number;
  incrementalMs: number;
  /** The report's fs section for the clean and the incremental build. */
  cleanFs: BuildReport['fs'];
  incrementalFs: BuildReport['fs'];
  /** Recipe lines the incremental build ran (with the wait off, the relink may be missing). */
  incrementalJobs: number;
  /** make -q on the client after the incremental build, caches expired. */
  upToDate: boolean;
}

async function sample(
  bed: Bed,
  name: string,
  mode: Sample['mode'],
  units: number,
): Promise<Sample> {
  writeFiles(join(bed.exportDir, name), generateFiles('ctree', { units, work: 4 }));
  const cwd = join(bed.mountPath, name);
  const report = join(bed.runDir, `${name}.json`);
  const wait = mode === 'off' ? ['--mp-fs-wait=0'] : [];
  const build = async (): Promise<{ ms: number; fs: BuildReport['fs']; jobs: number }> => {
    const t0 = performance.now();
    const r = await bed.mpmake(['-j9', '--mp-quiet', `--mp-report=${report}`, ...wait], { cwd });
    const ms = performance.now() - t0;
    if (r.code !== 0) throw new Error(`mpmake failed in ${name}: ${r.stderr.toString()}`);
    const rep = JSON.parse(readFileSync(report, 'utf8')) as BuildReport;
    return { ms, fs: rep.fs, jobs: rep.jobs.total };
  };
  const clean = await build();
  await delay(CACHE_EXPIRY_MS);
  await bed.client.run(
    'sed',
    ['-i', 's/^#define UNIT_SEED .*/#define UNIT_SEED 0x1234UL/', 'u001.c'],
    {
      cwd,
    },
  );
  const incremental = await build();
  await delay(CACHE_EXPIRY_MS);
  const q = await bed.client.run('make', ['-q'], { cwd });
  return {
    mode,
    cleanMs: clean.ms,
    incrementalMs: incremental.ms,
    cleanFs: clean.fs,
    incrementalFs: incremental.fs,
    incrementalJobs: incremental.jobs,
    upToDate: q.code === 0,
  };
}

export async function runFsWait(o: FsWaitOptions): Promise<void> {
  const missing = bedMissing();
  if (missing) {
    process.stdout.write(`fs-wait: ${missing}\n`);
    return;
  }
  const t = {
    teardowns: [] as Array<() => unknown>,
    teardown(fn: () => unknown) {
      this.teardowns.push(fn);
    },
  };
  const bed = await startBed(t);
  try {
    for (const node of bed.nodes) await bed.startAgent(node);
    const samples: Sample[] = [];
    for (let run = 0; run < o.runs; run++) {
      const order: Sample['mode'][] = run % 2 === 0 ? ['default', 'off'] : ['off', 'default'];
      for (const mode of order) samples.push(await sample(bed, `r${run}-${mode}`, mode, o.units));
    }
    const of = (mode: Sample['mode']): Sample[] => samples.filter((s) => s.mode === mode);
    const lags = of('default').flatMap((s) => [s.cleanFs, s.incrementalFs]);
    const targets = lags.map((f) => f?.targets);
    const inputs = lags.map((f) => f?.inputs);
    const worst = (xs: typeof targets, k: 'p50Ms' | 'p99Ms' | 'maxMs'): number =>
      Math.max(0, ...xs.map((x) => x?.[k] ?? 0));
    const sum = (xs: typeof targets, k: 'jobs' | 'retries' | 'pastBound'): number =>
      xs.reduce((a, x) => a + (x?.[k] ?? 0), 0);
    const cleanDefault = median(of('default').map((s) => s.cleanMs));
    const cleanOff = median(of('off').map((s) => s.cleanMs));
    const incDefault = median(of('default').map((s) => s.incrementalMs));
    const incOff = median(of('off').map((s) => s.incrementalMs));
    const overhead = cleanDefault / cleanOff;
    const target = 1.1;
    const md =
      `# Revalidation cost on the cluster test bed (sshfs, 3 s caches)\n\n` +
      `ctree ${o.units} units, mpmake -j9, 3 nodes; ${o.runs} run(s) per mode, interleaved; ` +
      `medians. Machine: ${machine().cpuModel}, ${machine().cpus} CPUs, load ${machine().loadavg1.toFixed(1)}.\n\n` +
      markdownTable(
        [
          '--mp-fs-wait',
          'clean build s',
          'incremental s',
          'incremental lines run',
          'make -q satisfied after',
        ],
        [
          [
            `${DEFAULT_FS_WAIT_MS} (default)`,
            fmt(cleanDefault / 1000),
            fmt(incDefault / 1000),
            median(of('default').map((s) => s.incrementalJobs)),
            `${of('default').filter((s) => s.upToDate).length}/${of('default').length}`,
          ],
          [
            '0 (off)',
            fmt(cleanOff / 1000),
            fmt(incOff / 1000),
            median(of('off').map((s) => s.incrementalJobs)),
            `${of('off').filter((s) => s.upToDate).length}/${of('off').length}`,
          ],
        ],
      ) +
      '\nVisibility lag with the default, over all its builds (worst build for p50/p99/max):\n\n' +
      markdownTable(
        ['files', 'jobs checked', 'p50 ms', 'p99 ms', 'max ms', 'retries', 'past the bound'],
        [
          [
            'targets (client)',
            sum(targets, 'jobs'),
            fmt(worst(targets, 'p50Ms'), 3),
            fmt(worst(targets, 'p99Ms'), 3),
            fmt(worst(targets, 'maxMs'), 3),
            sum(targets, 'retries'),
            sum(targets, 'pastBound'),
          ],
          [
            'inputs (nodes)',
            sum(inputs, 'jobs'),
            fmt(worst(inputs, 'p50Ms'), 3),
            fmt(worst(inputs, 'p99Ms'), 3),
            fmt(worst(inputs, 'maxMs'), 3),
            sum(inputs, 'retries'),
            sum(inputs, 'pastBound'),
          ],
        ],
      ) +
      '\nThe incremental times compare unlike work where the lines run differ: with the wait ' +
      'off, make may judge the program up to date from stale attributes and skip the relink ' +
      '(the bug the wait prevents).\n' +
      `\nClean build with the wait on / off: ${fmt(overhead)} × (target ≤ ${target}: ` +
      `${overhead <= target ? 'met' : 'MISSED'}).\n`;
    await publishResults('fs-wait', { options: o, machine: machine(), samples }, md);
  } finally {
    for (const fn of t.teardowns.reverse()) await fn();
  }
}

if (isMain(import.meta.url)) {
  try {
    const o = numberOptions(process.argv.slice(2), ['units', 'runs']);
    await runFsWait({
      units: o['units'] ?? FS_WAIT_DEFAULTS.units,
      runs: o['runs'] ?? FS_WAIT_DEFAULTS.runs,
    });
  } catch (err) {
    process.stderr.write(`fs-wait: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
