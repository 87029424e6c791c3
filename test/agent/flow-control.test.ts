import t from 'tap';
import { FLOW_WINDOW_BYTES } from '../../lib/agent/remote-job.js';
import { startAgent, TestClient, until } from './client.js';

const TOTAL = 20 * 1000 * 1000;
/** One read's worth per stream past the window, at most. */
const SLACK = 256 * 1024;

t.test('a job stops at the window until the client acks', async (t) => {
  const agent = await startAgent(t, { slots: 2 });
  const client = await TestClient.ready(t, agent.port);
  client.autoAck = false;
  const id = client.submit({
    argv: ['/bin/sh', '-c', `head -c ${TOTAL} /dev/zero; echo done >&2`],
  });
  await until(() => client.receivedBytes(id) >= FLOW_WINDOW_BYTES, 'a window of output');
  // Observe for a while: nothing more may come while nothing is acked.
  await new Promise((r) => setTimeout(r, 500));
  const held = client.receivedBytes(id);
  t.ok(held <= FLOW_WINDOW_BYTES + SLACK, `received ${held} bytes without acks`);
  t.notOk(
    client.messages.some((m) => m.type === 'exit' && m.id === id),
    'the job is blocked',
  );

  // Meanwhile other jobs of the same client still run.
  client.autoAck = true;
  const other = await client.run('echo other');
  t.equal(other.stdout.toString(), 'other\n');

  client.send({ type: 'ack', id, bytes: held });
  const r = await client.result(id);
  t.equal(r.exit.code, 0);
  t.equal(r.stdout.length, TOTAL);
  t.equal(r.stderr.toString(), 'done\n');
});
