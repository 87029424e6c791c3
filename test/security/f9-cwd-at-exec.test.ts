/**
 * Audit F9: `--root` was checked only when a job was admitted; a job that
 * waited in the queue started outside the root after its user swapped a
 * symlink. The launcher now checks the directory it really runs in, as the
 * job user, when the job starts.
 */
import { chmodSync, chownSync, existsSync, mkdirSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { nativeLauncher } from '../../lib/agent/job-command.js';
import type { JobStateMessage } from '../../lib/protocol/messages.js';
import { startAgent, TestClient } from '../agent/client.js';
import { makeTestUser, usersSkip } from '../helpers/users.js';

const skip = usersSkip() || (nativeLauncher() ? false : 'needs build/mpmake-exec (make build)');

t.test('F9: a queued job whose cwd left the root by a swap does not run', { skip }, async (t) => {
  const user = await makeTestUser(t, 'mpf9');
  const dir = t.testdir({ proj: { sub: {}, ws: {} }, outside: {} });
  chmodSync(dir, 0o755);
  const proj = join(dir, 'proj');
  for (const d of ['sub', 'ws']) chownSync(join(proj, d), user.uid, user.gid);
  chownSync(join(dir, 'outside'), user.uid, user.gid);
  const link = join(proj, 'ws', 'link');
  symlinkSync(join(proj, 'sub'), link);
  const agent = await startAgent(t, {
    slots: 1,
    extraArgs: ['--user', user.name, '--root', proj],
  });
  const client = await TestClient.ready(t, agent.port);
  const gate = join(proj, 'sub', 'gate');
  const first = client.submit({
    argv: ['/bin/sh', '-c', `while [ ! -e ${gate} ]; do sleep 0.05; done`],
    cwd: join(proj, 'sub'),
  });
  const queued = client.submit({
    argv: ['/bin/sh', '-c', 'echo "started in $(pwd -P)"; touch ran-here'],
    cwd: link,
  });
  await client.waitFor<JobStateMessage>((m) => m.type === 'queued' && m.id === queued);
  // Admitted and queued: now the job user points the link out of the root.
  unlinkSync(link);
  symlinkSync(join(dir, 'outside'), link);
  mkdirSync(gate);
  t.equal((await client.result(first)).exit.code, 0);
  const r = await client.result(queued);
  t.equal(r.exit.code, 127, 'refused where it starts');
  t.match(r.stderr.toString(), /outside this agent's --root directories/);
  t.notOk(existsSync(join(dir, 'outside', 'ran-here')), 'nothing ran outside the root');
});
