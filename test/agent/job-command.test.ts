import { spawnSync } from 'node:child_process';
import t from 'tap';
import {
  buildJobCommand,
  launcherCommand,
  nativeLauncher,
  printfFormat,
  shellCommand,
} from '../../lib/agent/job-command.js';
import { isUnder, jobRefusal } from '../../lib/agent/job-check.js';
import type { JobMessage } from '../../lib/protocol/messages.js';

type Job = Parameters<typeof buildJobCommand>[0];
type Builder = (job: Job) => ReturnType<typeof buildJobCommand>;

function runWith(build: Builder, job: Job): Buffer {
  const c = build(job);
  const r = spawnSync(c.file, c.args, { cwd: c.cwd, env: c.env });
  return r.stdout;
}

const run = (job: Job): Buffer => runWith(shellCommand, job);

t.test('printfFormat', async (t) => {
  t.equal(printfFormat(Buffer.from('a%b\\c\n\xe9', 'latin1')), 'a%%b\\\\c\\012\\351');
  const all = Buffer.from(Array.from({ length: 255 }, (_, i) => i + 1));
  const r = spawnSync('/bin/sh', ['-c', 'printf "$1"', 'sh', printfFormat(all)]);
  t.ok(r.stdout.equals(all), 'printf turns it back into every byte');
});

t.test('buildJobCommand: the wrapper runs argv as given', async (t) => {
  const base = { cwd: '/', env: { PATH: '/usr/bin:/bin' }, umask: 0o022 };
  const c = shellCommand({ ...base, argv: ['/bin/sh', '-c', 'echo "$0" "$1"', 'a b', "c'd"] });
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

t.test(
  'the native launcher: same argv, umask, bytes and merged output as the wrapper',
  async (t) => {
    const launcher = nativeLauncher();
    if (!launcher) {
      t.comment('build/mpmake-exec is not built (no C compiler): nothing to check');
      return;
    }
    const viaLauncher = (job: Job): Buffer => runWith((j) => launcherCommand(launcher, j), job);
    const base = { cwd: '/', env: { PATH: '/usr/bin:/bin' }, umask: 0o022 };
    t.equal(buildJobCommand({ ...base, argv: ['true'] }).file, launcher, 'used when built');
    t.equal(
      viaLauncher({ ...base, argv: ['/bin/sh', '-c', 'echo "$0|$1"', 'a b', "c'd"] }).toString(),
      "a b|c'd\n",
    );
    t.equal(
      viaLauncher({ ...base, umask: 0o27, argv: ['/bin/sh', '-c', 'umask'] }).toString(),
      '0027\n',
    );
    const bytes = Buffer.from('\xff\n\n', 'latin1');
    const out = viaLauncher({
      ...base,
      env: { ...base.env, B: bytes },
      argv: [
        '/bin/sh',
        '-c',
        'printf "%s|%s|%s" "$1" "$B" "${MPMAKE_EXEC_HEXENV-unset}"',
        Buffer.from('x'),
        bytes,
      ],
    });
    t.ok(out.equals(Buffer.concat([bytes, Buffer.from('|'), bytes, Buffer.from('|unset')])));
    const merged = viaLauncher({
      ...base,
      mergeOutput: true,
      argv: ['/bin/sh', '-c', 'echo 1; echo 2 >&2; echo 3'],
    });
    t.equal(merged.toString(), '1\n2\n3\n', 'stderr joins stdout in order');
    const c = launcherCommand(launcher, { ...base, argv: ['/bin/sh', '-c', 'kill -TERM $$'] });
    t.equal(
      spawnSync(c.file, c.args, { env: c.env }).signal,
      'SIGTERM',
      "the job's death by signal is passed on",
    );
  },
);
