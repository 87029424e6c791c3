/**
 * Runs every benchmark with its defaults (`make bench`) and writes
 * results/summary.md next to each benchmark's own JSON and table.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pretty, resultsDir } from './common.js';
import { runCtree } from './ctree.js';
import { runOverhead } from './overhead.js';

try {
  await runOverhead({ recipes: 400, jobs: 8, runs: 5 });
  await runCtree({ agents: 2, slots: 1, runs: 5 });
  const parts = ['overhead', 'ctree'].map((n) => readFileSync(join(resultsDir, `${n}.md`), 'utf8'));
  const summaryPath = join(resultsDir, 'summary.md');
  const summary = `# mpmake benchmarks\n\n${parts.join('\n').replace(/^# /gm, '## ')}`;
  writeFileSync(summaryPath, await pretty(summaryPath, summary));
  process.stdout.write(`\nwrote ${join(resultsDir, 'summary.md')}\n`);
} catch (err) {
  process.stderr.write(`run-all: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
}
