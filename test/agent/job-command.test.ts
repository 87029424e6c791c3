import { spawnSync } from 'node:child_process';
import t from 'tap';
import { buildJobCommand, printfFormat } from '../../lib/agent/job-command.js';
import { isUnder, jobRefusal } from '../../lib/agent/job-check.js';
import type { JobMessage } from '../../lib/protocol/messages.js';

function run(job: Parameters<typeof buildJobCommand>[0]): Buffer {
  const c = buildJobCommand(job);
  const r = spawnSync(c.file, c.args, { cwd: c.cwd, env: c.env });
  return r.stdout;
}

t.test('printfFormat', async (t) => {
  t.equal(printfFormat(Buffer.from('a%b\\c\n\xe9', 'latin1')), 'a%%b\\\\c\\012\\351');
  const all = Buffer.from(Array.from({ length: 255 }, (_, i) => i + 1));
  const r = spawnSync('/bin/sh', ['-c', 'printf "$1"', 'sh', printfFormat(all)]);
  t.ok(r.stdout.equals(all), 'printf turns it back into every byte');
});

t.test('buildJobCommand: the wrapper runs argv as given', async (t) => {
  const base = { cwd: '/', env: { PATH: '/usr/bin:/bin' }, umask: 0o022 };
  const c = buildJobCommand({ ...base, argv: ['/bin/sh', '-c', 'echo "$0" "$1"', 'a b', "c'd"] });
  t.same(c.args.slice(0, 3), ['-c', 'umask 0022; exec "$@"', 'mpm-job']);
  t.equal(
    run({ ...base, argv: ['/bin/sh', '-c', 'echo "$0|$1"', 'a b', "c'd"] }).toString(),
    "a b|c'd\n",
  );
  t.equal(run({ ...base, umask: 0o7, argv: ['/bin/sh', '-c', 'umask'] }).toString(), '0007\n');
  const bytes = Buffer.from('\xff\n\n', 'latin1');
  const out = run({
    ...base,
    env: { ...base.env, B: bytes },
    argv: [
      '/bin/sh',
      '-c',
      'printf "%s|%s|%s" "$1" "$B" "${mpm_k-unset}"',
      Buffer.from('x'),
      bytes,
    ],
  });
  t.ok(out.equals(Buffer.concat([bytes, Buffer.from('|'), bytes, Buffer.from('|unset')])));
});

t.test('jobRefusal and isUnder', async (t) => {
  const job = (over: Partial<JobMessage>): JobMessage => ({
    type: 'job',
    id: 1,
    argv: ['/bin/sh', '-c', 'true'],
    cwd: '/',
    env: {},
    umask: 0o22,
    ...over,
  });
  t.equal(jobRefusal(job({})), undefined);
  t.match(jobRefusal(job({ umask: 0o1000 })), /umask/);
  t.match(jobRefusal(job({ tty: { cols: 0, rows: 24 } })), /tty size/);
  t.match(jobRefusal(job({ argv: ['/bin/sh', Buffer.from([0x61, 0])] })), /NUL/);
  t.match(jobRefusal(job({ env: { 'A=B': 'x' } })), /invalid environment/);
  t.match(jobRefusal(job({ env: { 'a-b': Buffer.from([0xff]) } })), /non-UTF-8/);
  t.ok(isUnder('/a/b', '/a'));
  t.ok(isUnder('/a', '/a'));
  t.ok(isUnder('/x', '/'));
  t.notOk(isUnder('/ab', '/a'));
});
