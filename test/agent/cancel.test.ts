import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { ExitMessage } from '../../lib/protocol/messages.js';
import { isAlive, startAgent, TestClient, until } from './client.js';

/** A job whose shell waits on a background grandchild; returns both pids once written. */
async function startFamily(
  client: TestClient,
  dir: string,
  tty = false,
): Promise<{ id: number; shell: number; grandchild: number }> {
  const id = client.submit({
    argv: ['/bin/sh', '-c', 'sleep 300 & echo $! > grandchild; echo $$ > shell; wait'],
    cwd: dir,
    ...(tty ? { tty: { cols: 80, rows: 24 } } : {}),
  });
  const read = (f: string): number => Number(readFileSync(join(dir, f), 'utf8'));
  await until(() => {
    try {
      return read('grandchild') > 0 && read('shell') > 0;
    } catch {
      return false;
    }
  }, 'the job to write its pids');
  return { id, shell: read('shell'), grandchild: read('grandchild') };
}

t.test('cancel kills the running job and its whole process group', async (t) => {
  const agent = await startAgent(t, { slots: 2 });
  const client = await TestClient.ready(t, agent.port);
  for (const tty of [false, true]) {
    const dir = t.testdir();
    const { id, shell, grandchild } = await startFamily(client, dir, tty);
    t.ok(isAlive(grandchild), 'grandchild running');
    client.send({ type: 'cancel', id });
    const { exit } = await client.result(id);
    t.match(exit, { code: null, signal: 'SIGTERM' }, `tty=${tty}`);
    await until(() => !isAlive(grandchild), 'the grandchild to die');
    t.notOk(isAlive(shell));
  }
});

t.test('cancel with a signal, and SIGKILL after the grace time', async (t) => {
  const agent = await startAgent(t, { slots: 1 });
  const client = await TestClient.ready(t, agent.port);
  const int = client.submit({ argv: ['/bin/sh', '-c', 'echo up; exec sleep 300'] });
  await client.waitFor((m) => m.type === 'data' && m.id === int);
  client.send({ type: 'cancel', id: int, signal: 'SIGINT' });
  t.match((await client.result(int)).exit, { code: null, signal: 'SIGINT' });

  const stubborn = client.submit({ argv: ['/bin/sh', '-c', "trap '' TERM; echo up; sleep 300"] });
  await client.waitFor((m) => m.type === 'data' && m.id === stubborn);
  client.send({ type: 'cancel', id: stubborn });
  t.match((await client.result(stubborn)).exit, { code: null, signal: 'SIGKILL' });
});

t.test('cancel of a queued job drops it', async (t) => {
  const dir = t.testdir();
  const agent = await startAgent(t, { slots: 1 });
  const client = await TestClient.ready(t, agent.port);
  const running = client.submit({ argv: ['/bin/sh', '-c', 'sleep 0.5'] });
  const queued = client.submit({ argv: ['/bin/sh', '-c', 'touch ran'], cwd: dir });
  await client.waitFor((m) => m.type === 'load' && m.queued === 1);
  client.send({ type: 'cancel', id: queued, signal: 'SIGINT' });
  const exit = await client.waitFor<ExitMessage>((m) => m.type === 'exit' && m.id === queued);
  t.match(exit, { code: null, signal: 'SIGINT', runMs: 0 });
  t.equal((await client.result(running)).exit.code, 0);
  t.throws(() => readFileSync(join(dir, 'ran')), 'the queued job never ran');
});

t.test("closing the connection kills the client's jobs and drops its queue", async (t) => {
  const agent = await startAgent(t, { slots: 2 });
  const dir = t.testdir();
  const client = await TestClient.ready(t, agent.port);
  const pipes = await startFamily(client, join(t.testdir({ a: {} }), 'a'));
  const tty = await startFamily(client, join(t.testdir({ b: {} }), 'b'), true);
  client.submit({ argv: ['/bin/sh', '-c', 'touch ran'], cwd: dir });
  await client.waitFor((m) => m.type === 'load' && m.queued === 1);
  client.socket.destroy();

  for (const pid of [pipes.shell, pipes.grandchild, tty.shell, tty.grandchild]) {
    await until(() => !isAlive(pid), `pid ${pid} to die`);
  }
  t.pass('no process of the client remains');
  const other = await TestClient.ready(t, agent.port);
  await other.waitFor((m) => m.type === 'load' && m.running === 0 && m.queued === 0, 'idle');
  t.throws(() => readFileSync(join(dir, 'ran')), 'the queued job never ran');
});

t.test('SIGTERM to the agent kills every job and exits 0', async (t) => {
  const agent = await startAgent(t, { slots: 2 });
  const client = await TestClient.ready(t, agent.port);
  const family = await startFamily(client, t.testdir());
  const exited = new Promise<number | null>((resolve) => agent.process.once('exit', resolve));
  await agent.stop('SIGTERM');
  t.equal(await exited, 0);
  await until(() => !isAlive(family.grandchild), 'the grandchild to die');
  await client.closed;
  t.pass('connection closed');
});

t.test('an agent started by spawnLocalAgent dies with its parent (stdin EOF)', async (t) => {
  const agent = await startAgent(t, { slots: 1 });
  const client = await TestClient.ready(t, agent.port);
  const family = await startFamily(client, t.testdir());
  const exited = new Promise<number | null>((resolve) => agent.process.once('exit', resolve));
  agent.process.stdin!.destroy(); // what the parent's death does
  t.equal(await exited, 0);
  await until(() => !isAlive(family.grandchild), 'the grandchild to die');
});
