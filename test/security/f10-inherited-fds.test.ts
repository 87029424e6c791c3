/**
 * Audit F10: the `--user` launcher and the pty path passed the agent's
 * inherited descriptors to the job. An agent started as root holding fd 9
 * open on a root-only file: a job (pipe and pty) can neither write to fd 9
 * nor see any descriptor above 2.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { nativeLauncher } from '../../lib/agent/job-command.js';
import { startAgent, TestClient } from '../agent/client.js';
import { makeTestUser, usersSkip } from '../helpers/users.js';

const skip = usersSkip() || (nativeLauncher() ? false : 'needs build/mpmake-exec (make build)');

t.test('F10: no descriptor of the agent above 2 reaches a job', { skip }, async (t) => {
  const dir = t.testdir();
  const log = join(dir, 'root-only.log');
  writeFileSync(log, '', { mode: 0o600 });
  const user = await makeTestUser(t, 'mpf10');
  const agent = await startAgent(t, {
    slots: 1,
    extraArgs: ['--user', user.name],
    wrap: ['/bin/sh', '-c', `exec 9>>'${log}'; exec "$@"`, 'sh'],
  });
  const client = await TestClient.ready(t, agent.port);
  const script =
    'id -un; ls /proc/self/fd | tr "\\n" " "; echo; ' +
    'echo "written by $(id -un)" >&9 && echo wrote; echo end';
  for (const tty of [undefined, { cols: 80, rows: 24 }]) {
    const what = tty ? 'pty job' : 'pipe job';
    const r = await client.run(script, { cwd: '/tmp', ...(tty ? { tty } : {}) });
    const lines = r.stdout.toString().replace(/\r/g, '').split('\n');
    t.equal(lines[0], user.name, `${what} runs as the user`);
    // ls's own descriptor for the directory it lists is 3.
    t.equal(lines[1]?.trim(), '0 1 2 3', `${what}: nothing above 2 is open`);
    t.notOk(lines.includes('wrote'), `${what}: fd 9 is not there`);
    t.ok(lines.includes('end'), `${what} ran to its end`);
  }
  t.equal(readFileSync(log, 'utf8'), '', 'the root-only file is untouched');
});
