// `mpm status` and `mpm top` per user: two users (one with two builds) on
// one loopback agent with one slot; the agent's status reply sums each
// user's running and queued jobs over their builds, and both views show a
// row per user.
import t from 'tap';
import { checkAgentMessage } from '../../lib/protocol/messages.js';
import type { NodeStatus } from '../../lib/cluster-view/node-status.js';
import { startAgent, TestClient, until } from '../agent/client.js';
import { markerSeconds, sleepers } from '../helpers/procs.js';
import { killSleepers, runMpm } from './mpm.js';

t.test('the users entry of a status reply is checked', async (t) => {
  const status = {
    type: 'status',
    id: 1,
    clients: [],
    users: [{ user: 'alice@ws1', builds: 2, running: 1, queued: 3 }],
    jobs: [],
  };
  t.same(checkAgentMessage(status), status);
  t.same(checkAgentMessage({ ...status, users: undefined }), { ...status, users: undefined });
  t.type(checkAgentMessage({ ...status, users: [{ user: 'alice@ws1', running: 1 }] }), 'string');
  t.type(
    checkAgentMessage({ ...status, users: [{ user: 'a', builds: 1, running: -1, queued: 0 }] }),
    'string',
  );
});

t.test('running and queued jobs per user', async (t) => {
  const agent = await startAgent(t, { slots: 1 });
  const hosts = `127.0.0.1:${agent.port}`;
  const marker = markerSeconds(60);
  t.teardown(() => killSleepers(marker));
  const cwd = t.testdir();

  // The test sends no heartbeats: the agent must not hang up while mpm runs.
  const quiet = { heartbeatTimeoutMs: 600_000 };
  const alice = { user: 'alice', host: 'ws1', ...quiet };
  const aliceFirst = await TestClient.ready(t, agent.port, undefined, { ...alice, build: 'a1' });
  const aliceSecond = await TestClient.ready(t, agent.port, undefined, { ...alice, build: 'a2' });
  const bob = await TestClient.ready(t, agent.port, undefined, {
    user: 'bob',
    host: 'ws2',
    build: 'b1',
    ...quiet,
  });
  aliceFirst.submit({ argv: ['sleep', marker] });
  await until(() => sleepers(marker).length === 1, "alice's first build holding the slot");
  aliceSecond.submit({ argv: ['sleep', marker] });
  bob.submit({ argv: ['sleep', marker] });
  bob.submit({ argv: ['sleep', marker] });
  await Promise.all(
    [aliceSecond, bob, bob].map((c, i) =>
      c.waitFor((m) => m.type === 'queued' && m.id === (i === 2 ? 2 : 1), 'a queued job'),
    ),
  );

  const json = await runMpm(['status', '--json', '--hosts', hosts], { cwd });
  t.equal(json.code, 0, `mpm status --json; stderr: ${json.stderr}`);
  const [node] = JSON.parse(json.stdout.toString()) as NodeStatus[];
  t.same(
    node!.users,
    [
      { user: 'alice@ws1', builds: 2, running: 1, queued: 1 },
      { user: 'bob@ws2', builds: 1, running: 0, queued: 2 },
    ],
    'one entry per user, summed over its builds; mpm status itself is not a user with jobs',
  );

  const text = (await runMpm(['status', '--hosts', hosts], { cwd })).stdout.toString();
  t.match(text, /\nusers:\n +USER +BUILDS +RUN +QUEUED +RUN\/QUEUED PER NODE\n/, 'a users table');
  t.match(text, new RegExp(`\\n +alice@ws1 +2 +1 +1 +${agent.id} 1/1\\n`), "alice's row");
  t.match(text, new RegExp(`\\n +bob@ws2 +1 +0 +2 +${agent.id} 0/2\\n`), "bob's row");

  const top = (await runMpm(['top', '--hosts', hosts], { cwd })).stdout.toString();
  t.match(top, /\nUSER +BUILDS +RUN +QUEUED/, 'mpm top shows the users table too');
  t.match(top, /\nalice@ws1 +2 +1 +1 /);
  t.match(top, /\nbob@ws2 +1 +0 +2 /);
});
