/**
 * What a job may do: an agent started as root runs its jobs as `--user`
 * (that user's uid, gid and supplementary groups), refuses to start as
 * root without --user unless --allow-root, and never lets the client's
 * environment act while it is still root (LD_PRELOAD). Needs root and
 * useradd: the test creates a user and a group and removes them.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { lookupUser } from '../../lib/agent/run-as.js';
import { nativeLauncher } from '../../lib/agent/job-command.js';
import { startAgent, TestClient } from '../agent/client.js';
import { mpm } from '../helpers/security.js';

const USER = 'mpmtest';
const GROUP = 'mpmtestg';
const COMMENT = 'mpmake test user';

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const isRoot = process.geteuid?.() === 0;
const skip = !isRoot
  ? 'needs root (to start an agent that drops to --user)'
  : !has('useradd') || !has('groupadd')
    ? 'needs useradd and groupadd'
    : nativeLauncher() === undefined
      ? 'needs build/mpmake-exec (make build)'
      : false;

/** Removes the test user (only one this test made: by its comment) and group. */
function removeUser(): void {
  const entry = spawnSync('getent', ['passwd', USER]).stdout?.toString() ?? '';
  if (entry.includes(COMMENT)) spawnSync('userdel', [USER]);
  spawnSync('groupdel', [GROUP]);
}

t.test('as root', { skip }, async (t) => {
  if (spawnSync('getent', ['passwd', USER]).status === 0) {
    const entry = execFileSync('getent', ['passwd', USER]).toString();
    if (!entry.includes(COMMENT)) {
      t.fail(`a user ${USER} exists that this test did not make; not touching it`);
      return;
    }
    removeUser();
  }
  spawnSync('groupdel', [GROUP]);
  execFileSync('groupadd', [GROUP]);
  execFileSync('useradd', ['-M', '-N', '-c', COMMENT, '-s', '/bin/sh', '-G', GROUP, USER]);
  t.teardown(removeUser);
  const user = await lookupUser(USER);
  const groupGid = Number(execFileSync('getent', ['group', GROUP]).toString().split(':')[2]);
  t.ok(user.uid > 0 && user.groups.includes(groupGid), 'the lookup sees the user and its group');

  t.test('refuses to start as root without --user, naming both options', async (t) => {
    const r = await mpm(['agent', '--listen', '127.0.0.1:0', '--slots', '1']);
    t.equal(r.code, 2);
    t.equal(r.stdout, '', 'it never listened');
    t.match(r.stderr, /refusing to run as root without --user.*--user NAME.*--allow-root/);
    const rootUser = await mpm(['agent', '--listen', '127.0.0.1:0', '--user', 'root']);
    t.match(rootUser, { code: 2, stderr: /--user root is root.*--allow-root/ });
    const nobody = await mpm(['agent', '--listen', '127.0.0.1:0', '--user', 'no-such-user-x9']);
    t.match(nobody, { code: 2, stderr: /--user no-such-user-x9: no such user/ });
  });

  t.test('jobs run as the user, with its groups, in the client environment', async (t) => {
    const dir = t.testdir({ shared: {}, private: { inner: {} } });
    const shared = join(dir, 'shared');
    chmodSync(shared, 0o777);
    chmodSync(join(dir, 'private'), 0o700);
    const agent = await startAgent(t, { slots: 2, extraArgs: ['--user', USER] });
    const client = await TestClient.ready(t, agent.port);
    const env = {
      PATH: '/usr/bin:/bin',
      HOME: '/home/from-the-client',
      USER: 'client-user',
      LOGNAME: 'client-user',
    };
    const r = await client.run('id -u; id -g; id -G; echo "$HOME $USER $LOGNAME"; touch made', {
      cwd: shared,
      env,
    });
    t.equal(r.exit.code, 0, r.stderr.toString());
    const [uid, gid, groups, names] = r.stdout.toString().trim().split('\n');
    t.equal(Number(uid), user.uid, 'uid');
    t.equal(Number(gid), user.gid, 'gid');
    t.same(
      groups!.split(' ').map(Number).sort(),
      [...user.groups].sort(),
      "exactly the user's groups",
    );
    t.notOk(groups!.split(' ').includes('0'), 'not in root’s group');
    t.equal(names, '/home/from-the-client client-user client-user', 'the client env is kept');
    t.equal(statSync(join(shared, 'made')).uid, user.uid, 'files are the user’s');

    const tty = await client.run('id -u; echo "$TERM"', {
      cwd: shared,
      env,
      tty: { cols: 80, rows: 24 },
    });
    t.equal(
      tty.stdout.toString().replace(/\r/g, ''),
      `${user.uid}\nxterm-256color\n`,
      'on a pty too',
    );

    const marker = join(shared, 'entered');
    const denied = await client.run(`touch ${marker}`, { cwd: join(dir, 'private', 'inner'), env });
    t.equal(denied.exit.code, 127, 'a directory the user cannot enter');
    t.match(denied.stderr.toString(), /cannot enter .*inner as uid \d+: Permission denied/);
    t.notOk(existsSync(marker));
  });

  const cc = has('cc');
  t.test(
    "the client's LD_PRELOAD never runs as root",
    { skip: cc ? false : 'needs a C compiler' },
    async (t) => {
      const dir = t.testdir({ marks: {} });
      const marks = join(dir, 'marks');
      chmodSync(marks, 0o777);
      const src = join(dir, 'preload.c');
      writeFileSync(
        src,
        [
          '#include <fcntl.h>',
          '#include <stdio.h>',
          '#include <unistd.h>',
          '__attribute__((constructor)) static void mark(void) {',
          '  char path[4096];',
          `  snprintf(path, sizeof path, "%s/euid-%d", ${JSON.stringify(marks)}, (int)geteuid());`,
          '  int fd = open(path, O_WRONLY | O_CREAT, 0666);',
          '  if (fd >= 0) close(fd);',
          '}',
        ].join('\n'),
      );
      const lib = join(dir, 'preload.so');
      execFileSync('cc', ['-shared', '-fPIC', '-o', lib, src]);
      chmodSync(dir, 0o755);
      const agent = await startAgent(t, { slots: 1, extraArgs: ['--user', USER] });
      const client = await TestClient.ready(t, agent.port);
      const r = await client.run('true', {
        cwd: marks,
        env: { PATH: '/usr/bin:/bin', LD_PRELOAD: lib },
      });
      t.equal(r.exit.code, 0, r.stderr.toString());
      const seen = readdirSync(marks);
      t.ok(seen.includes(`euid-${user.uid}`), 'the job itself got its LD_PRELOAD');
      t.notOk(seen.includes('euid-0'), 'nothing ran as root with it');
    },
  );

  t.test('--allow-root: jobs run as root, as asked', async (t) => {
    const dir = t.testdir();
    mkdirSync(join(dir, 'w'));
    const agent = await startAgent(t, { slots: 1, extraArgs: ['--allow-root'] });
    const client = await TestClient.ready(t, agent.port);
    t.equal((await client.run('id -u', { cwd: join(dir, 'w') })).stdout.toString(), '0\n');
  });
});
