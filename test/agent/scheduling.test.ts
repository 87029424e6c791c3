import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { LoadMessage } from '../../lib/protocol/messages.js';
import { startAgent, TestClient } from './client.js';

t.test('jobs beyond the slots queue, and all complete', async (t) => {
  const agent = await startAgent(t, { slots: 1 });
  const client = await TestClient.ready(t, agent.port);
  const ids = [1, 2, 3].map(() => client.submit({ argv: ['/bin/sh', '-c', 'sleep 0.3'] }));
  const busy = await client.waitFor<LoadMessage>(
    (m) => m.type === 'load' && m.running === 1 && m.queued === 2,
    'a load report of 1 running, 2 queued',
  );
  t.equal(busy.slots, 1);
  t.notOk(
    client.messages.some((m) => m.type === 'load' && m.running > 1),
    'never more running than slots',
  );
  for (const id of ids) t.equal((await client.result(id)).exit.code, 0);
  t.ok(
    (await client.result(3)).exit.queuedMs >= (await client.result(2)).exit.queuedMs,
    'the last waited longest',
  );
  await client.waitFor((m) => m.type === 'load' && m.running === 0 && m.queued === 0, 'idle');
});

t.test('a freed slot goes round-robin across clients', async (t) => {
  const dir = t.testdir();
  const stamps = join(dir, 'stamps');
  const agent = await startAgent(t, { slots: 1 });
  const a = await TestClient.ready(t, agent.port);
  const b = await TestClient.ready(t, agent.port);
  const job = (name: string): string[] => ['/bin/sh', '-c', `echo ${name} >> ${stamps}; sleep 0.1`];
  const aIds = [1, 2, 3, 4, 5, 6].map((i) => a.submit({ argv: job(`A${i}`) }));
  await b.waitFor((m) => m.type === 'load' && m.queued === 5, 'A queued 5 behind 1 running');
  const bId = b.submit({ argv: job('B1') });
  for (const id of aIds) await a.result(id);
  await b.result(bId);
  const order = readFileSync(stamps, 'utf8').trim().split('\n');
  t.equal(order.length, 7);
  t.ok(order.indexOf('B1') < order.indexOf('A6'), `B1 started before A6: ${order.join(' ')}`);
  t.same(
    order.filter((s) => s.startsWith('A')),
    ['A1', 'A2', 'A3', 'A4', 'A5', 'A6'],
    'FIFO within a client',
  );
});

t.test('issue-15: each client hears the queue as its own user sees it', async (t) => {
  const agent = await startAgent(t, { slots: 1 });
  const ann = await TestClient.ready(t, agent.port, undefined, { host: 'ann-box' });
  const bob = await TestClient.ready(t, agent.port, undefined, { host: 'bob-box' });
  const annIds = [1, 2, 3].map(() => ann.submit({ argv: ['/bin/sh', '-c', 'sleep 0.3'] }));
  const annView = await ann.waitFor<LoadMessage>(
    (m) => m.type === 'load' && m.running === 1 && m.queued === 2,
    "ann's 1 running, 2 waiting",
  );
  t.match(annView, { mineRunning: 1, mineQueued: 2, others: [] });
  const bobView = await bob.waitFor<LoadMessage>(
    (m) => m.type === 'load' && m.queued === 2,
    'the same queue, as bob sees it',
  );
  t.match(bobView, { mineRunning: 0, mineQueued: 0, others: [2] });
  for (const id of annIds) await ann.result(id);
});
