// Issue 16: the progress line's total when a tree has no history: a
// bounded `make -n` of the same goals, and the line says where its total
// came from (or why it has none).
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { countDryRunLines, dryRunTotal } from '../../lib/coordinator/dry-run-total.js';
import { PtyRun } from '../cluster-view/mpm.js';
import { startCluster } from '../helpers/cluster.js';
import { mpmakeCli } from '../helpers/paths.js';
import { cleanEnv, scratchDir } from '../helpers/run.js';

t.test('issue-16: the lines of make -n that reach mpmake', async (t) => {
  const out = [
    "make[1]: Entering directory '/src/sub'",
    'cc -c -o a.o a.c',
    'printf "%s\\n" \\',
    '  two lines',
    'echo done',
    '/usr/bin/make -C sub',
    "make: Nothing to be done for 'all'.",
    '',
  ].join('\n');
  t.equal(countDryRunLines(out, ['make'], ['echo']), 2, 'cc, and the continued printf as one');
  t.equal(countDryRunLines(out, ['make'], []), 3, 'echo counts when it is not on the local list');
});

t.test('issue-16: make -n, bounded', async (t) => {
  const dir = t.testdir({
    Makefile: 'all: a b\na b:\n\t@cp Makefile $@\n\twc -l Makefile\n',
    'slow.mk': '$(shell sleep 5)\nall:\n\ttrue\n',
  });
  const opts = { make: 'make', cwd: dir, env: cleanEnv(), local: [] };
  t.same(await dryRunTotal({ ...opts, args: [] }), { total: 4 });
  t.same(await dryRunTotal({ ...opts, args: ['a'] }), { total: 2 }, 'of the same goals');
  t.same(await dryRunTotal({ ...opts, args: ['-f', 'slow.mk'], boundMs: 300 }), {
    reason: 'make -n took over 0.3 s',
  });
  t.same(await dryRunTotal({ ...opts, args: ['nosuchgoal'] }), { reason: 'make -n exited 2' });
});

t.test(
  'issue-16: on a terminal, the first build of a tree takes its total from make -n',
  async (t) => {
    const cluster = await startCluster(t, 1, 2);
    const dir = t.testdir({
      Makefile: 'all: a b c\na b c:\n\tsleep 1\n\tcp Makefile $@\n',
    });
    const cache = scratchDir('mpmake-dry-cache-');
    t.teardown(() => rmSync(cache, { recursive: true, force: true }));
    const run = PtyRun.start(
      t,
      process.execPath,
      [mpmakeCli, '-j2', `--mp-hosts=${cluster.hosts}`],
      {
        cwd: dir,
        env: cleanEnv({ TERM: 'xterm-256color', XDG_CACHE_HOME: cache, MPMAKE_NO_LEARN: '0' }),
      },
    );
    const end = await run.finish(120_000);
    t.equal(end.exitCode, 0, run.output);
    t.match(
      run.output,
      /mpmake: \d\/6 done \(\d+%[^;]*; total from make -n, no history for this tree\)/,
    );
    t.ok(
      ['a', 'b', 'c'].every((f) => existsSync(join(dir, f))),
      'built',
    );
  },
);
