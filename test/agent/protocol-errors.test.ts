import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { encodeFrame } from '../../lib/protocol/frame-codec.js';
import { isAlive, startAgent, TestClient, until } from './client.js';

const invalidMsgpack = Buffer.from([0, 0, 0, 2, 0x81, 0xa1]);
const oversized = Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
const unknownType = encodeFrame({ type: 'bogus', id: 1 });
const notAMap = encodeFrame([1, 2, 3]);

const cases: [string, Buffer][] = [
  ['invalid msgpack', invalidMsgpack],
  ['oversized length prefix', oversized],
  ['unknown message type', unknownType],
  ['a message that is not a map', notAMap],
];

t.test('a broken client is cut off; others are served meanwhile', async (t) => {
  const agent = await startAgent(t, { slots: 4 });
  const good = await TestClient.ready(t, agent.port);
  for (const [name, bytes] of cases) {
    t.test(`${name}, after auth: its jobs die with it`, async (t) => {
      const dir = t.testdir();
      const bad = await TestClient.ready(t, agent.port);
      bad.submit({
        argv: ['/bin/sh', '-c', 'sleep 300 & echo $! > pid; wait'],
        cwd: dir,
      });
      await until(() => {
        try {
          return Number(readFileSync(join(dir, 'pid'), 'utf8')) > 0;
        } catch {
          return false;
        }
      }, 'the job to start');
      const pid = Number(readFileSync(join(dir, 'pid'), 'utf8'));
      const slow = good.submit({ argv: ['/bin/sh', '-c', 'sleep 0.2; echo fine'] });
      bad.socket.write(bytes);
      await bad.closed;
      const error = bad.messages.find((m) => m.type === 'error');
      if (error) t.match(error, { code: 'MPM_ERR_PROTOCOL' });
      await until(() => !isAlive(pid), 'the broken client job to die');
      t.equal((await good.result(slow)).stdout.toString(), 'fine\n');
    });

    t.test(`${name}, before auth`, async (t) => {
      const socket = connect({ host: '127.0.0.1', port: agent.port });
      t.teardown(() => socket.destroy());
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(bytes);
      socket.resume();
      await new Promise((resolve) => socket.once('close', resolve));
      good.send({ type: 'ping', seq: 7 });
      await good.waitFor((m) => m.type === 'pong' && m.seq === 7);
      t.pass('closed; the agent still serves others');
    });
  }
});

t.test('a peer that half-closes mid-frame is cut off', async (t) => {
  const agent = await startAgent(t, { slots: 1 });
  const bad = await TestClient.ready(t, agent.port);
  bad.socket.end(Buffer.from([0, 0, 0, 10, 1]));
  await bad.closed;
  const good = await TestClient.ready(t, agent.port);
  t.equal((await good.run('echo ok')).stdout.toString(), 'ok\n');
});
