/**
 * Issue 13: at most one copy of a job writes at any time, whatever fails.
 * Each fault mid-build (a frozen agent, a frozen mpmake, a killed agent, a
 * killed mpmake followed at once by a new build), with a log of every write:
 * no overlap, every target whole, nothing left behind. MPMAKE_TEST_FAULT_REPS
 * (default 1) repeats each; benchmarks/one-writer.ts runs 20 of each.
 */
import t from 'tap';
import { FAULTS, runFault } from '../helpers/one-writer.js';

const reps = Number(process.env['MPMAKE_TEST_FAULT_REPS'] ?? '1') || 1;

for (const fault of FAULTS) {
  t.test(`${fault}: one writer at a time, every target whole`, async (t) => {
    for (let i = 0; i < reps; i++) {
      const r = await runFault(fault, { dir: t.testdir({}), heartbeatTimeoutMs: 2000 });
      t.equal(r.code, 0, `the build succeeds\n${r.stderr}`);
      t.same(r.overlaps, [], 'no two copies of a job wrote at the same time');
      t.same(r.incomplete, [], 'every target holds all its lines');
      t.same(r.leftovers, [], 'no probe or temp file left in the tree');
      t.equal(r.strays, 0, 'no job process left anywhere');
      if (fault === 'stop-agent' || fault === 'kill-agent') {
        t.ok(r.copies > 4, 'the lost jobs ran again');
        // Each job once, where it finally ran; re-runs apart.
        const { jobs, nodes } = r.report;
        t.equal(jobs.total, 4, 'four jobs, each counted once');
        t.equal(jobs.remote + jobs.local, 4);
        t.equal(
          nodes.reduce((a, n) => a + n.jobs, 0),
          jobs.remote,
          'per-node counts add up to the remote jobs',
        );
        t.ok(jobs.retried >= 1, 're-runs counted apart');
        t.match(r.stderr, /running it again on ow-1 \((after waiting|its lease there)/);
      }
    }
  });
}
