// The agent's side of `mpm status`: the status-request/status messages,
// answered only after authentication, listing the other clients and the
// jobs on the node.
import t from 'tap';
import { jobCommandText, MAX_STATUS_COMMAND_CHARS } from '../../lib/agent/agent-status.js';
import {
  checkAgentMessage,
  checkClientMessage,
  type ErrorMessage,
  type StatusMessage,
} from '../../lib/protocol/messages.js';
import { markerSeconds, sleepers } from '../helpers/procs.js';
import { startAgent, TestClient, until } from '../agent/client.js';
import { killSleepers } from './mpm.js';

t.test('messages are checked', async (t) => {
  t.same(checkClientMessage({ type: 'status-request', id: 3 }), { type: 'status-request', id: 3 });
  t.type(checkClientMessage({ type: 'status-request' }), 'string');
  t.type(checkClientMessage({ type: 'status-request', id: 'x' }), 'string');
  const status = {
    type: 'status',
    id: 1,
    clients: [{ user: 'u', host: 'h', pid: 1, build: 'b', running: 1, queued: 0 }],
    jobs: [
      { build: 'b', command: 'cc -c x.c', cwd: '/src', startedAtMs: 1700000000000 },
      { build: 'b', command: 'cc -c y.c', cwd: '/src', startedAtMs: null },
    ],
  };
  t.same(checkAgentMessage(status), status);
  t.type(checkAgentMessage({ ...status, clients: [{ user: 'u' }] }), 'string');
  t.type(checkAgentMessage({ ...status, jobs: [{ build: 'b', command: 1 }] }), 'string');
  t.type(checkAgentMessage({ ...status, jobsLeftOut: 'many' }), 'string');
});

t.test('what a job runs, for people', async (t) => {
  t.equal(jobCommandText(['/bin/sh', '-c', 'cc -c x.c']), 'cc -c x.c', 'the line of SHELL -c');
  t.equal(jobCommandText(['/bin/bash', '-ec', 'make -C sub']), 'make -C sub', '.SHELLFLAGS -ec');
  t.equal(jobCommandText(['sleep', '5']), 'sleep 5', 'argv joined');
  t.equal(jobCommandText([new Uint8Array([0x63, 0x63])]), 'cc', 'bytes as text');
  const long = jobCommandText(['/bin/sh', '-c', 'x'.repeat(1000)]);
  t.equal(long.length, MAX_STATUS_COMMAND_CHARS, 'capped');
  t.ok(long.endsWith('…'));
});

t.test('status from a live agent', async (t) => {
  const agent = await startAgent(t, { slots: 1 });
  const marker = markerSeconds(60);
  t.teardown(() => killSleepers(marker));

  t.test('not before authentication', async (t) => {
    const client = await TestClient.connect(t, agent.port);
    await client.waitFor((m) => m.type === 'hello', 'hello');
    client.send({ type: 'status-request', id: 1 });
    const error = await client.waitFor<ErrorMessage>((m) => m.type === 'error', 'an error');
    t.equal(error.code, 'MPM_ERR_AUTH');
    await client.closed;
    t.notOk(
      client.messages.some((m) => m.type === 'status'),
      'no status to a client that did not authenticate',
    );
  });

  t.test('the other clients and the jobs, running first', async (t) => {
    const builder = await TestClient.ready(t, agent.port);
    builder.submit({ argv: ['/bin/sh', '-c', `sleep ${marker}`] });
    builder.submit({ argv: ['sleep', '1'], cwd: '/' });
    await until(() => sleepers(marker).length === 1, 'the first job running');

    const asker = await TestClient.ready(t, agent.port);
    asker.send({ type: 'status-request', id: 7 });
    const status = await asker.waitFor<StatusMessage>((m) => m.type === 'status', 'the status');
    t.equal(status.id, 7);
    t.equal(status.clients.length, 1, 'the builder, not the asker');
    t.match(status.clients[0], { host: 'test', pid: process.pid, running: 1, queued: 1 });
    t.match(status.jobs, [
      { command: `sleep ${marker}`, cwd: process.cwd(), startedAtMs: Number },
      { command: 'sleep 1', cwd: '/', startedAtMs: null },
    ]);
    t.ok(
      Math.abs(status.jobs[0]!.startedAtMs! - Date.now()) < 60_000,
      'startedAtMs is a time on the agent clock',
    );

    builder.socket.destroy();
    await until(() => sleepers(marker).length === 0, 'the job killed with its client');
    asker.send({ type: 'status-request', id: 8 });
    const after = await asker.waitFor<StatusMessage>(
      (m) => m.type === 'status' && m.id === 8,
      'the second status',
    );
    t.same(after.clients, [], 'a client that left is no longer listed');
    t.same(after.jobs, []);
  });
});
