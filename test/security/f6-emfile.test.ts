/**
 * Audit F6: a `--user` agent crashed when spawning a job failed with
 * EMFILE (out of descriptors): the 'error' listener was attached after a
 * line that threw on the missing stdio. Now the job ends with status 127
 * and a message, and the agent serves on.
 */
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { nativeLauncher } from '../../lib/agent/job-command.js';
import { isAlive, startAgent, TestClient } from '../agent/client.js';
import { has, makeTestUser, usersSkip } from '../helpers/users.js';

const skip =
  usersSkip() ||
  (nativeLauncher() ? false : 'needs build/mpmake-exec (make build)') ||
  (has('prlimit') ? false : 'needs prlimit');

// Room for the agent to start (it loads ~100 modules), not for the flood below.
const LIMIT = 160;

t.test('F6: a job that cannot be spawned (EMFILE) does not end the agent', { skip }, async (t) => {
  const user = await makeTestUser(t, 'mpf6');
  const agent = await startAgent(t, {
    slots: 1,
    extraArgs: ['--user', user.name],
    wrap: ['prlimit', `--nofile=${LIMIT}:${LIMIT}`, '--'],
  });
  const client = await TestClient.ready(t, agent.port);
  t.equal((await client.run('echo ok', { cwd: '/tmp' })).stdout.toString(), 'ok\n');
  // Idle connections from several loopback addresses (32 per address are
  // allowed) use up the agent's descriptors.
  const flood: Socket[] = [];
  t.teardown(() => flood.forEach((s) => s.destroy()));
  for (let i = 0; i < LIMIT; i++) {
    const s = connect({
      host: '127.0.0.1',
      port: agent.port,
      localAddress: `127.0.1.${1 + (i % 8)}`,
    });
    s.on('error', () => {});
    flood.push(s);
  }
  await new Promise((r) => setTimeout(r, 500));
  const r = await client.run('echo during', { cwd: '/tmp' });
  t.ok(isAlive(agent.pid), 'the agent is alive');
  if (r.exit.code === 127) {
    t.match(r.stderr.toString(), /cannot start job: .*(EMFILE|ENFILE)/, 'the job says why');
  } else {
    t.comment(`the spawn did not hit the limit here (exit ${r.exit.code}); nothing to check`);
  }
  flood.forEach((s) => s.destroy());
  await new Promise((r) => setTimeout(r, 300));
  t.equal(
    (await client.run('echo after', { cwd: '/tmp' })).stdout.toString(),
    'after\n',
    'it serves jobs again once descriptors are free',
  );
});
