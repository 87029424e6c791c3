// Issue 16: `mpm trace` on a file that is missing, unreadable, not JSON or
// not a trace says so in one line naming the file and what to give instead,
// with its code, and exits 2 (never raw errno text, never a stack).
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { runMpm } from '../cluster-view/mpm.js';
import { cleanEnv } from '../helpers/run.js';

const GIVE = 'give the file a build wrote with mpmake --mp-trace=FILE [MPM_ERR_TRACE]';

t.test('issue-16: mpm trace on a missing or unreadable file', async (t) => {
  const dir = t.testdir({
    'bad.json': '{"events": []}',
    'broken.json': '{',
    'locked.json': '{"traceEvents": []}',
    sub: {},
  });
  chmodSync(join(dir, 'locked.json'), 0o000);
  const cases: Array<[string, string]> = [
    ['missing.json', `the trace file DIR/missing.json does not exist; ${GIVE}`],
    ['sub', `the trace file DIR/sub is a directory; ${GIVE}`],
    ['broken.json', `the trace file DIR/broken.json is not JSON; ${GIVE}`],
    ['bad.json', `DIR/bad.json is not a trace-event file: no "traceEvents" array; ${GIVE}`],
  ];
  // root reads a mode-000 file anyway: the case holds only for others.
  if (process.getuid?.() !== 0) {
    cases.push([
      'locked.json',
      `the trace file DIR/locked.json cannot be read: permission denied; ${GIVE}`,
    ]);
  }
  for (const [file, message] of cases) {
    const r = await runMpm(['trace', join(dir, file)], { cwd: dir, env: cleanEnv() });
    t.equal(r.code, 2, `${file}: exit 2`);
    t.equal(r.stderr.toString(), `mpm trace: ${message.replaceAll('DIR', dir)}\n`, file);
    t.equal(r.stdout.toString(), '', `${file}: nothing on stdout`);
  }
});
