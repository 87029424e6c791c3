/**
 * Issue 13: a job an agent refuses is placed again, not failed. Reproduces
 * the measured case: an agent at --max-queued-per-client 2 listed as /8
 * (5 of 8 recipes failed with MPM_ERR_JOB_REFUSED, and the report said
 * "refused": 0).
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnLocalAgent } from '../../lib/agent/spawn-agent.js';
import { cleanEnv, runMpmake } from '../helpers/run.js';

const N = 8;
const makefile =
  `all: ${Array.from({ length: N }, (_, i) => `t${i}`).join(' ')}\n` +
  Array.from({ length: N }, (_, i) => `t${i}:\n\t@sleep 0.3; echo built > $@\n`).join('');

for (const fallback of [true, false]) {
  t.test(
    `refused jobs are placed again (${fallback ? 'run locally' : 'queued until a slot frees, --mp-no-fallback'})`,
    async (t) => {
      const agent = await spawnLocalAgent({
        slots: 1,
        id: 'small',
        env: cleanEnv(),
        extraArgs: ['--max-queued-per-client', '2'],
      });
      t.teardown(() => agent.stop());
      const dir = t.testdir({ Makefile: makefile });
      const report = join(dir, 'report.json');
      const traceFile = join(dir, 'trace.json');
      const r = await runMpmake(
        [
          `--mp-hosts=${agent.host}:${agent.port}/8`,
          `--mp-report=${report}`,
          `--mp-trace=${traceFile}`,
          ...(fallback ? [] : ['--mp-no-fallback']),
          '-j8',
        ],
        { cwd: dir, env: cleanEnv() },
      );
      t.equal(r.code, 0, r.stderr.toString());
      t.notMatch(r.stderr.toString(), /MPM_ERR_JOB_REFUSED/);
      for (let i = 0; i < N; i++) t.equal(readFileSync(join(dir, `t${i}`), 'utf8'), 'built\n');
      const rep = JSON.parse(readFileSync(report, 'utf8'));
      t.ok(rep.jobs.refused > 0, `refusals counted (${rep.jobs.refused})`);
      t.equal(rep.jobs.total, N, 'each job counted once');
      t.equal(rep.jobs.remote + rep.jobs.local, N);
      if (!fallback) t.equal(rep.jobs.remote, N, 'all ran on the agent');
      // Issue 13: the jobs run locally count in the parallelism (they were
      // instants, invisible to the mean): each is a span with its duration,
      // and the mean is the trace's job time over the build's.
      const trace = JSON.parse(readFileSync(traceFile, 'utf8'));
      const spans = (trace.traceEvents as Array<Record<string, unknown>>).filter(
        (e) => e['ph'] === 'X' && e['cat'] === 'job',
      );
      const local = spans.filter((e) => (e['args'] as { node: string }).node === 'local');
      t.equal(local.length, rep.jobs.local, 'one span per job run locally');
      t.ok(
        local.every((e) => (e['dur'] as number) > 0),
        'each with its duration',
      );
      const busyUs = spans.reduce((a, e) => a + (e['dur'] as number), 0);
      const endUs = trace.otherData.endUs as number;
      t.ok(
        Math.abs(rep.parallelism.mean - busyUs / endUs) <= 0.011,
        `mean ${rep.parallelism.mean} = all jobs' time / build time (${(busyUs / endUs).toFixed(3)})`,
      );
    },
  );
}
