/**
 * Issue 13: a job an agent refuses is placed again, not failed. Reproduces
 * the measured case: an agent at --max-queued-per-client 2 listed as /8
 * (5 of 8 recipes failed with MPM_ERR_JOB_REFUSED, and the report said
 * "refused": 0). The client decides by the refusal's code, not its words:
 * refused for load, a job waits for a slot there; refused for a reason that
 * will not change on that node (its --root check), it goes elsewhere, or
 * runs on the client, or fails under --mp-no-fallback.
 */
import t from 'tap';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { spawnLocalAgent } from '../../lib/agent/spawn-agent.js';
import type { BuildReport } from '../../lib/coordinator/build-report.js';
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
      t.same(rep.jobs.refusedByKind, { 'queue-limit': rep.jobs.refused }, 'all for load');
      t.equal(rep.jobs.total, N, 'each job counted once');
      t.equal(rep.jobs.remote, N, 'a job refused for load waits for a slot there');
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

const M = 4;
/** Its lines run in `other`, a sibling of the build's directory, and say where they ran. */
const otherMakefile = Array.from({ length: M }, (_, i) => `t${i}`)
  .map((n) => `${n}:\n\t@node=$\${MPMAKE_NODE:-client}; echo "$$node" > $@\n`)
  .join('');
const outerMakefile = `all:\n\t@+$(MAKE) -s -C ../other ${Array.from({ length: M }, (_, i) => `t${i}`).join(' ')}\n`;

t.test(
  'a refusal that will not change on a node (outside its --root) is never retried there',
  async (t) => {
    const base = t.testdir({
      top: { Makefile: outerMakefile },
      other: { Makefile: otherMakefile },
    });
    const top = join(base, 'top');
    const other = join(base, 'other');
    // The fenced agent passes the start checks (the build's directory is under
    // its root) and has the most free slots, so it is chosen first for every line.
    const fenced = await spawnLocalAgent({
      slots: 4,
      id: 'fenced',
      env: cleanEnv(),
      extraArgs: ['--root', top],
    });
    t.teardown(() => fenced.stop());
    const open = await spawnLocalAgent({ slots: 1, id: 'open', env: cleanEnv() });
    t.teardown(() => open.stop());
    const hosts = (...agents: Array<typeof open>): string =>
      `--mp-hosts=${agents.map((a) => `${a.host}:${a.port}`).join(',')}`;
    const build = async (
      args: string[],
    ): Promise<{ code: number | null; stderr: string; rep: BuildReport }> => {
      for (let i = 0; i < M; i++) rmSync(join(other, `t${i}`), { force: true });
      const report = join(base, 'report.json');
      rmSync(report, { force: true });
      const r = await runMpmake([`--mp-report=${report}`, '-j4', ...args], {
        cwd: top,
        env: cleanEnv(),
      });
      const rep = (
        existsSync(report) ? JSON.parse(readFileSync(report, 'utf8')) : {}
      ) as BuildReport;
      return { code: r.code, stderr: r.stderr.toString(), rep };
    };
    const ranOn = (): string[] =>
      Array.from({ length: M }, (_, i) => readFileSync(join(other, `t${i}`), 'utf8').trim());

    const both = await build([hosts(fenced, open), '--mp-no-fallback']);
    t.equal(both.code, 0, both.stderr);
    t.same(ranOn(), Array<string>(M).fill('open'), 'every line ran on the node that takes it');
    const kinds = both.rep.jobs.refusedByKind ?? {};
    t.same(Object.keys(kinds), ['outside-roots'], 'refused for its root check only');
    const fencedOut = kinds['outside-roots'] ?? 0;
    t.ok(
      fencedOut >= 1 && fencedOut <= M,
      `each line refused at most once there (${fencedOut} refusals, ${M} lines)`,
    );

    const alone = await build([hosts(fenced), '--mp-no-fallback']);
    t.not(alone.code, 0, 'with no node to take it and no fallback, the line fails');
    t.match(
      alone.stderr,
      /no node will take this job; fenced refused it \(outside-roots\): .*--root/,
    );
    t.match(alone.stderr, /MPM_ERR_JOB_REFUSED/);

    const local = await build([hosts(fenced)]);
    t.equal(local.code, 0, local.stderr);
    t.equal(local.rep.jobs.local, M, 'with fallback, each line runs on the client');
    t.equal(local.rep.jobs.refusedByKind?.['outside-roots'], M, 'after one refusal each');
  },
);
