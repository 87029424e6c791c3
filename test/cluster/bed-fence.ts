/**
 * Fencing a cut node (issues 11 and 13): recipes append to the log on the
 * shared tree without a pause, one node's link is cut at a random moment
 * in that stream, and mpmake runs the bed's fence command (it ends the
 * node's sftp sessions at the file server) before the node's jobs run again
 * elsewhere; the link comes back after the build. Without the fence, the
 * writes the node's sshfs had queued at the cut land when the link returns,
 * after the re-run began (`FENCE=0 node dist/benchmarks/one-writer.js`
 * counts how often: see README, Faults). With it, none may.
 */
import type { Bed } from '../helpers/cluster-bed.js';
import { runCutLink } from '../helpers/cut-link.js';
import type { Test } from 'tap';

export async function fenceCases(t: Test, bed: Bed): Promise<void> {
  t.test('a node cut mid-stream and fenced writes nothing after its jobs re-ran', async (t) => {
    const r = await runCutLink(bed, 'fence-stream', {
      heartbeatTimeoutMs: 2000,
      at: 'any',
      stream: true,
      fence: true,
    });
    t.equal(r.code, 0, `the build succeeds\n${r.stderr}`);
    t.same(r.incomplete, [], 'every target as plain make leaves it');
    t.same(r.lateLines, [], 'no write of the cut node reached the server after its re-run began');
    t.same(r.overlaps, [], 'no two copies of a job wrote at the same time');
    t.equal(r.strays, 0, 'no job process left anywhere');
    t.ok(r.copies > 2, "the cut node's jobs ran again (two targets)");
    t.ok(r.victimLines > 0, 'the cut node had written');
    const victim = r.victim.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    t.match(
      r.stderr,
      new RegExp(
        `lost ${victim} .*fenced ${victim} \\(the fence command exited 0 .*running it again`,
      ),
      'mpmake fenced the node before running its jobs again, and said so',
    );
    t.same(
      (r.report as { fenced?: Array<{ node: string; ok: boolean }> }).fenced?.map((f) => [
        f.node,
        f.ok,
      ]),
      [[r.victim, true]],
      'the report lists the fence, once',
    );
  });
}
