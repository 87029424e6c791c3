// Issue 14: nothing about mpmake shows in what a makefile or a recipe can
// read, and lines make execs itself (its fast path) end as make's own.
// Each case is named after the cause it guards against.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { startCluster } from '../helpers/cluster.js';
import { fidelityCase } from '../helpers/fidelity.js';
import { fidelityCaseDir as caseDir, mpmakeCli } from '../helpers/paths.js';
import { cleanEnv, runCapture, runMake } from '../helpers/run.js';

const cluster = await startCluster(t, 2, 2);
const c = () => cluster;

// MAKEFLAGS once read `s -- MPMAKE_TARGET=$$@ SHELL=/tmp/…/sh`.
fidelityCase(t, c, 'makeflags-visible', caseDir('makeflags-visible'), [
  { label: 'plain', args: [] },
  { label: 'silent-keep-going-var', args: ['-s', '-k', 'V=1'] },
  { label: 'gnumakeflags', args: [], env: { GNUMAKEFLAGS: '--no-print-directory' } },
  { label: 'eval', args: ['--eval=X:=1'] },
]);

// A command-line SHELL= changed $(origin SHELL) and $(flavor SHELL).
fidelityCase(t, c, 'shell-origin-flavor', caseDir('shell-origin'), [{ args: [] }]);

// A command-line SHELL= hid the makefile's own error.
fidelityCase(t, c, 'shell-recursive-error', caseDir('shell-recursive-error'), [
  { args: [], expectRemote: false },
]);

// A /bin/sh sat between make and the program: "/bin/sh: 1: ./foo: not found",
// "Error 143" for SIGTERM, "Error 134" for SIGABRT, targets kept.
fidelityCase(t, c, 'fast-path-missing-command-sigterm-sigabrt', caseDir('fast-path'), [
  { args: ['-k'] },
]);

// $(MAKE) and MAKE_COMMAND named the real make, not the command typed.
fidelityCase(t, c, 'make-value', caseDir('make-var'), [{ args: [] }]);

// Every job on a node had MPMAKE_REMOTE=1 in its environment; only the
// documented MPMAKE_NODE may be added there.
fidelityCase(t, c, 'job-env-mpmake-remote', caseDir('job-env'), [{ args: [] }]);

// mpmake's pool read --jobserver-auth=3,3 (one fd for both ends) where make
// 4.3 has 3,4; jobs on a node saw no jobserver word at all (so a make there
// kept quiet where make's says "jobserver unavailable"); -j2 in MAKEFLAGS
// from the environment was dropped.
fidelityCase(t, c, 'jobserver-auth-form', caseDir('jobserver-auth'), [
  { label: 'j2', args: ['-j2'] },
  { label: 'makeflags-env-j2', args: [], env: { MAKEFLAGS: '-j2' } },
]);

// GNU make's features/parallelism#3: mpmake handed make its pool through
// MAKEFLAGS, so a makefile's `MAKEFLAGS += -j2` won over the command line's
// -j4 ("-j2 forced in makefile", two jobs at once; the three jobs here wait
// for each other). make now makes its pool itself and the interposer makes
// it mpmake's.
fidelityCase(t, c, 'command-line-j-wins-over-makefile-j', caseDir('command-line-j-wins'), [
  { label: 'j4', args: ['-j4'], compare: 'sorted-lines' },
  { label: 'j4-makeflags-env-s', args: ['-j4'], compare: 'sorted-lines', env: { MAKEFLAGS: '-s' } },
]);

// make re-executed itself (after remaking inc.mk) by its argv[0], the
// command typed: typed as the path of mpmake, a second mpmake started
// without the first one's options ("no cluster configured; running plain
// make"). (The harness types `make`, which hid it.)
t.test('remade-makefile-reexec-runs-mpmake', async (t) => {
  const makefile = readFileSync(join(caseDir('remade-makefile'), 'Makefile'), 'utf8');
  const plainDir = t.testdir({ plain: { Makefile: makefile }, mp: { Makefile: makefile } });
  const plain = await runMake(['-j4'], { cwd: join(plainDir, 'plain'), env: cleanEnv() });
  const report = join(plainDir, 'report.json');
  const mp = await runCapture(
    process.execPath,
    [
      mpmakeCli,
      '--mp-quiet',
      '--mp-local=',
      `--mp-hosts=${cluster.hosts}`,
      `--mp-report=${report}`,
      '-j4',
    ],
    { cwd: join(plainDir, 'mp'), env: cleanEnv(), argv0: mpmakeCli },
  );
  t.equal(mp.stderr.toString(), plain.stderr.toString(), 'stderr');
  const sorted = (b: Buffer): string[] => b.toString().split('\n').sort();
  t.same(sorted(mp.stdout), sorted(plain.stdout), 'stdout lines');
  t.equal(mp.code, plain.code, 'exit status');
  const jobs = (JSON.parse(readFileSync(report, 'utf8')) as { jobs: { total: number } }).jobs;
  t.equal(jobs.total, 4, 'inc.mk, a, b and all, all through this build');
});
