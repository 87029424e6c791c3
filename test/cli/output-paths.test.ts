/**
 * Files mpmake writes (report, trace) are checked before make starts, and
 * nothing after the build changes make's exit status (issue 13); the temp
 * file behind each is created O_EXCL beside it, never through a planted
 * symlink (audit finding F11).
 */
import t from 'tap';
import { existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../lib/output-file.js';
import { startCluster } from '../helpers/cluster.js';
import { cleanEnv, runMpmake } from '../helpers/run.js';

const MAKEFILE = 'all:\n\techo built > out.txt\n';

for (const flag of ['--mp-report', '--mp-trace'] as const) {
  t.test(`${flag} into a missing directory: exit 2 before make runs`, async (t) => {
    const dir = t.testdir({ Makefile: MAKEFILE });
    const r = await runMpmake([`${flag}=${join(dir, 'no', 'such', 'r.json')}`], {
      cwd: dir,
      env: cleanEnv(),
    });
    t.equal(r.code, 2);
    t.match(
      r.stderr.toString(),
      new RegExp(`${flag}: cannot write .*no such directory.*MPM_ERR_OUTPUT`),
    );
    t.notOk(existsSync(join(dir, 'out.txt')), 'make did not run');
    t.notMatch(r.stderr.toString(), /at .*\.js:\d+/, 'no stack trace');
  });
}

t.test('MPMAKE_REPORT naming a directory: the error names the variable', async (t) => {
  const dir = t.testdir({ Makefile: MAKEFILE, sub: {} });
  const r = await runMpmake([], { cwd: dir, env: cleanEnv({ MPMAKE_REPORT: join(dir, 'sub') }) });
  t.equal(r.code, 2);
  t.match(r.stderr.toString(), /MPMAKE_REPORT: cannot write .* is a directory/);
  t.notOk(existsSync(join(dir, 'out.txt')));
});

t.test("a report that can no longer be written keeps make's exit status", async (t) => {
  const cluster = await startCluster(t, 1, 2);
  // The recipe removes the report's directory: the write after the build fails.
  const dir = t.testdir({
    Makefile: 'all:\n\trm -rf reports; echo built > out.txt\n',
    reports: {},
  });
  const r = await runMpmake(
    [`--mp-hosts=${cluster.hosts}`, `--mp-report=${join(dir, 'reports', 'r.json')}`],
    { cwd: dir, env: cleanEnv() },
  );
  t.equal(r.code, 0, "make's status, not a crash");
  t.match(r.stderr.toString(), /mpmake: cannot write the report .*r\.json/);
  t.notMatch(r.stderr.toString(), /at .*\.js:\d+/, 'no stack trace');
  t.match(r.stderr.toString(), /mpmake: 1 jobs:/, 'the summary is still printed');
  t.equal(readFileSync(join(dir, 'out.txt'), 'utf8'), 'built\n');
});

t.test('F11: the report is not written through a planted symlink', async (t) => {
  const dir = t.testdir({ victim: 'precious\n' });
  const target = join(dir, 'r.json');
  // The old temp name was predictable: TARGET.tmp-PID.
  symlinkSync(join(dir, 'victim'), `${target}.tmp-${process.pid}`);
  writeFileAtomic(target, '{"ok":1}\n');
  t.equal(readFileSync(join(dir, 'victim'), 'utf8'), 'precious\n', 'the victim is untouched');
  t.equal(readFileSync(target, 'utf8'), '{"ok":1}\n');
  // A link at the target itself is replaced, not followed.
  writeFileSync(join(dir, 'victim2'), 'precious\n');
  symlinkSync(join(dir, 'victim2'), join(dir, 'r2.json'));
  writeFileAtomic(join(dir, 'r2.json'), 'new\n');
  t.equal(readFileSync(join(dir, 'victim2'), 'utf8'), 'precious\n');
  t.equal(readFileSync(join(dir, 'r2.json'), 'utf8'), 'new\n');
  t.same(
    readdirSync(dir).filter((n) => n.includes('.tmp-') && !n.endsWith(`.tmp-${process.pid}`)),
    [],
    'no temp file left',
  );
});
