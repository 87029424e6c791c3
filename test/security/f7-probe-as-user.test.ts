/**
 * Audit F7: probes ran as root on a `--user` agent: an oracle for the
 * content of files the job user cannot read, root open() of FIFOs, and a
 * symlink race out of --root. The probe now runs as the job user, opens
 * nothing but a regular file, and checks the real path of what it opened.
 * It also says when the job user cannot write the build directory.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { nativeLauncher } from '../../lib/agent/job-command.js';
import type { ProbeResultMessage } from '../../lib/protocol/messages.js';
import { isAlive, startAgent, TestClient } from '../agent/client.js';
import { makeTestUser, usersSkip } from '../helpers/users.js';

const skip = usersSkip() || (nativeLauncher() ? false : 'needs build/mpmake-exec (make build)');

t.test('F7: probes run as the job user, on regular files under the roots', { skip }, async (t) => {
  const user = await makeTestUser(t, 'mpf7');
  const dir = t.testdir({ proj: { rootonly: { 'pin.txt': 'hunter2\n' }, ws: {}, sub: {} } });
  chmodSync(dir, 0o755);
  const proj = join(dir, 'proj');
  chmodSync(join(proj, 'rootonly'), 0o700);
  chmodSync(join(proj, 'rootonly', 'pin.txt'), 0o600);
  for (const d of ['ws', 'sub']) chownSync(join(proj, d), user.uid, user.gid);
  writeFileSync(join(proj, 'sub', 'probe'), 'tok');
  writeFileSync(join(dir, 'secret.txt'), 'tok');
  symlinkSync(dir, join(proj, 'ws', 'flip'));
  const fifo = join(proj, 'sub', 'fifo');
  spawnSync('mkfifo', [fifo]);
  chmodSync(fifo, 0o666);

  const agent = await startAgent(t, {
    slots: 1,
    extraArgs: ['--user', user.name, '--root', proj],
  });
  const client = await TestClient.ready(t, agent.port);
  let id = 0;
  const probe = async (path: string, content: string): Promise<ProbeResultMessage> => {
    const n = ++id;
    client.send({ type: 'probe', id: n, path, content });
    return client.waitFor<ProbeResultMessage>((m) => m.type === 'probe-result' && m.id === n);
  };

  t.match(await probe(join(proj, 'sub', 'probe'), 'tok'), { ok: true }, 'a good probe passes');
  const pin = join(proj, 'rootonly', 'pin.txt');
  const right = await probe(pin, 'hunter2\n');
  const wrong = await probe(pin, 'hunter1\n');
  t.equal(right.ok, false, 'the right guess of an unreadable file does not pass');
  t.match(right.reason, /Permission denied/);
  t.equal(right.reason, wrong.reason.replace('hunter1', 'hunter2'), 'no oracle: same answer');

  // A writer blocks in open() until someone opens the FIFO for reading.
  const writer = spawn('/bin/sh', ['-c', `echo x > ${fifo}`], { stdio: 'ignore' });
  t.teardown(() => writer.kill('SIGKILL'));
  t.match(await probe(fifo, 'x\n'), { ok: false, reason: /not a regular file/ });
  t.ok(isAlive(writer.pid!), 'the FIFO was never opened: its writer still waits');

  t.match(
    await probe(join(proj, 'ws', 'flip', 'secret.txt'), 'tok'),
    { ok: false, reason: /outside this agent's --root directories/ },
    'a symlinked directory out of the root: refused by the real path of what was opened',
  );
  mkdirSync(join(proj, 'ro'));
  writeFileSync(join(proj, 'ro', 'probe'), 'tok');
  chmodSync(join(proj, 'ro', 'probe'), 0o644);
  t.match(
    await probe(join(proj, 'ro', 'probe'), 'tok'),
    { ok: false, reason: new RegExp(`${user.name} \\(uid ${user.uid}\\) cannot write`) },
    'the start check fails where the job user cannot write the build directory',
  );
});
