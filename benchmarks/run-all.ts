/**
 * Runs every benchmark (`make bench`) and writes results/summary.md next to
 * each benchmark's own JSON and table.
 *
 *   node dist/benchmarks/run-all.js [--quick] [--only NAME,NAME]
 *
 * The full set takes about 12 minutes on the 2-core reference machine;
 * --quick (fewer runs, smaller points) about 5. A benchmark that fails is
 * reported and the others still run; the exit status is then 1.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fmt, nowMs, pretty, resultsDir } from './common.js';
import { runCompare } from './compare.js';
import { runCtree } from './ctree.js';
import { FAULTS_DEFAULTS, runFaults } from './faults.js';
import { MEMORY_DEFAULTS, runMemory } from './memory.js';
import { runOverhead } from './overhead.js';
import { SCALING_DEFAULTS, runScaling } from './scaling.js';
import { THROUGHPUT_DEFAULTS, runThroughput } from './throughput.js';
import { TWELVE_USERS_DEFAULTS, runTwelveUsers } from './twelve-users.js';

/** Each benchmark: full settings, and --quick ones. */
const BENCHMARKS: Record<string, (quick: boolean) => Promise<unknown>> = {
  overhead: (q) => runOverhead({ recipes: q ? 200 : 400, jobs: 8, runs: q ? 2 : 5 }),
  ctree: (q) => runCtree({ agents: 2, slots: 1, runs: q ? 2 : 5 }),
  'twelve-users': (q) =>
    runTwelveUsers(
      q
        ? { ...TWELVE_USERS_DEFAULTS, users: [1, 4, 12], runs: 1, singleRuns: 2 }
        : TWELVE_USERS_DEFAULTS,
    ),
  scaling: (q) =>
    runScaling(q ? { ...SCALING_DEFAULTS, agents: [1, 8], runs: 1 } : SCALING_DEFAULTS),
  throughput: (q) =>
    runThroughput(q ? { ...THROUGHPUT_DEFAULTS, jobs: 500, runs: 1 } : THROUGHPUT_DEFAULTS),
  memory: (q) => runMemory(q ? { jobs: 1000, streamMib: 256, runs: 1 } : MEMORY_DEFAULTS),
  faults: (q) => runFaults(q ? { ...FAULTS_DEFAULTS, runs: 1 } : FAULTS_DEFAULTS),
  compare: (q) => runCompare({ runs: q ? 1 : 5 }),
};

function parseArgv(argv: string[]): { quick: boolean; only: string[] } {
  let quick = false;
  let only = Object.keys(BENCHMARKS);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') quick = true;
    else if (a === '--only' || a.startsWith('--only=')) {
      const raw = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      only = (raw ?? '').split(',').filter(Boolean);
      const unknown = only.filter((n) => !(n in BENCHMARKS));
      if (unknown.length || only.length === 0) {
        throw new Error(`--only takes names from: ${Object.keys(BENCHMARKS).join(', ')}`);
      }
    } else {
      throw new Error(`unknown argument ${a}; usage: run-all [--quick] [--only NAME,NAME]`);
    }
  }
  return { quick, only };
}

try {
  const { quick, only } = parseArgv(process.argv.slice(2));
  const t0 = nowMs();
  const timings: string[] = [];
  const failed: string[] = [];
  for (const name of only) {
    const start = nowMs();
    process.stderr.write(`\nrun-all: ${name}${quick ? ' (quick)' : ''}\n`);
    try {
      await BENCHMARKS[name]!(quick);
    } catch (err) {
      failed.push(name);
      process.stderr.write(`run-all: ${name} failed: ${(err as Error).stack ?? String(err)}\n`);
    }
    timings.push(`${name} ${fmt((nowMs() - start) / 1000, 0)} s`);
  }
  // The summary holds every benchmark's latest table, including ones not run now.
  const parts = Object.keys(BENCHMARKS)
    .map((n) => join(resultsDir, `${n}.md`))
    .filter((p) => existsSync(p))
    .map((p) => readFileSync(p, 'utf8'));
  const summaryPath = join(resultsDir, 'summary.md');
  const summary =
    `# mpmake benchmarks\n\n` +
    `Written by \`node dist/benchmarks/run-all.js\`; each section is the latest run of that ` +
    `benchmark (its date is in results/NAME.json).\n\n` +
    parts.join('\n').replace(/^# /gm, '## ');
  writeFileSync(summaryPath, await pretty(summaryPath, summary));
  process.stdout.write(
    `\nwrote ${summaryPath}\nrun-all: ${timings.join(', ')}; total ${fmt((nowMs() - t0) / 60000, 1)} min\n`,
  );
  if (failed.length) {
    process.stderr.write(`run-all: failed: ${failed.join(', ')}\n`);
    process.exitCode = 1;
  }
} catch (err) {
  process.stderr.write(`run-all: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
