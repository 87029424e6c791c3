/**
 * Regression (pid reuse): the agent's late SIGKILL of a job's process
 * group, 2 s after a cancel to catch stragglers, went to the group id even
 * when the job's leader had long been reaped; by then that id may be
 * another process group's. Now signals go through the spawner, which sends
 * them only while the leader is unreaped (so the id cannot be reused) and
 * kills what is left of a cancelled job's group as the leader ends, before
 * reaping it. Checked in a pid namespace of our own, where the ended job's
 * pid is handed to an unrelated process on purpose.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../lib/agent/package-root.js';

const root = packageRoot();
const unshare = spawnSync('unshare', ['-pf', '--mount-proc', 'true']);
if (process.geteuid?.() !== 0 || unshare.status !== 0) {
  t.comment('needs root and unshare (a pid namespace): nothing to check here');
} else if (!existsSync(join(root, 'build', 'mpmake-spawnd'))) {
  t.comment('build/mpmake-spawnd is not built: nothing to check');
} else {
  t.test("a late kill never reaches a process group that reused an ended job's id", async (t) => {
    const child = join(root, 'dist', 'test', 'helpers', 'pid-reuse-child.js');
    const r = spawnSync('unshare', ['-pf', '--mount-proc', process.execPath, child], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    t.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as Record<string, unknown>;
    t.equal(got['reused'], true, "the unrelated group got the ended job's id");
    t.equal(got['victimKilled'], false, 'and the late kill did not reach it');
    t.equal(
      got['stragglerKilled'],
      true,
      `the cancelled job's straggler ${got['straggler']} was killed`,
    );
  });
}
