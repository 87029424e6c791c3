import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import {
  PROTOCOL_VERSION,
  type ErrorMessage,
  type HelloMessage,
} from '../../lib/protocol/messages.js';
import { noSecret, startAgent, TestClient } from './client.js';

const SECRET = 'correct horse battery staple';

function secretFile(dir: string): string {
  const file = join(dir, 'secret');
  writeFileSync(file, `${SECRET}\n`, { mode: 0o600 });
  return file;
}

t.test('without a secret: hello, auth, welcome, load, ping', async (t) => {
  const agent = await startAgent(t, { slots: 3, id: 'node-a', ...noSecret() });
  t.match(agent.hostSpec, /^127\.0\.0\.1:\d+\/3$/);
  const client = await TestClient.connect(t, agent.port);
  const hello = await client.waitFor<HelloMessage>((m) => m.type === 'hello');
  t.equal(hello.version, PROTOCOL_VERSION);
  t.equal(hello.authRequired, false);
  t.equal(hello.challenge.length, 32);
  t.equal(client.messages.length, 1, 'nothing but hello before auth');

  const welcome = await client.authenticate(null);
  t.equal(welcome.nodeId, 'node-a');
  t.equal(welcome.slots, 3);
  t.ok(welcome.cpus >= 1);
  t.ok(Math.abs(welcome.clockMs - Date.now()) < 60_000);
  const load = await client.waitFor((m) => m.type === 'load');
  t.match(load, { slots: 3, running: 0, queued: 0 });
  await client.waitFor(
    () => client.messages.filter((m) => m.type === 'load').length >= 2,
    'a second, periodic load report',
  );

  client.send({ type: 'ping', seq: 42 });
  const pong = await client.waitFor((m) => m.type === 'pong');
  t.match(pong, { seq: 42 });

  const other = await TestClient.connect(t, agent.port);
  const hello2 = await other.waitFor<HelloMessage>((m) => m.type === 'hello');
  t.not(
    Buffer.from(hello2.challenge).toString('hex'),
    Buffer.from(hello.challenge).toString('hex'),
    'fresh challenge',
  );
});

t.test('with a secret: the right proof is welcomed', async (t) => {
  const dir = t.testdir();
  const agent = await startAgent(t, { slots: 1, secretFile: secretFile(dir) });
  const client = await TestClient.connect(t, agent.port);
  const hello = await client.waitFor<HelloMessage>((m) => m.type === 'hello');
  t.equal(hello.authRequired, true);
  const welcome = await client.authenticate(Buffer.from(SECRET));
  t.equal(welcome.slots, 1);
  const r = await client.run('echo ok');
  t.equal(r.stdout.toString(), 'ok\n');
});

t.test('with a secret: a wrong or missing proof is refused, and no job runs', async (t) => {
  const dir = t.testdir();
  const agent = await startAgent(t, { slots: 1, secretFile: secretFile(dir) });
  const marker = join(dir, 'marker');

  // Wrong secret, with a job right behind the auth in the same write.
  const wrong = await TestClient.connect(t, agent.port);
  await wrong.authenticate(Buffer.from('wrong')).catch(() => undefined);
  wrong.submit({ argv: ['/bin/sh', '-c', `touch ${marker}`] });
  const err = await wrong.waitFor<ErrorMessage>((m) => m.type === 'error');
  t.equal(err.code, 'MPM_ERR_AUTH');
  await wrong.closed;
  t.notOk(
    wrong.messages.some((m) => m.type === 'welcome'),
    'no welcome',
  );

  // No proof at all.
  const none = await TestClient.connect(t, agent.port);
  void none.authenticate(null).catch(() => undefined);
  t.match(await none.waitFor((m) => m.type === 'error'), { code: 'MPM_ERR_AUTH' });
  await none.closed;

  // A job instead of auth.
  const eager = await TestClient.connect(t, agent.port);
  eager.submit({ argv: ['/bin/sh', '-c', `touch ${marker}`] });
  t.match(await eager.waitFor((m) => m.type === 'error'), { code: 'MPM_ERR_AUTH' });
  await eager.closed;
  t.same(
    eager.messages.map((m) => m.type),
    ['hello', 'error'],
    'nothing revealed before auth',
  );

  // A good client runs a job after all that; the marker never appeared.
  const good = await TestClient.ready(t, agent.port, Buffer.from(SECRET));
  await good.run('true');
  t.notOk(existsSync(marker), 'no job ran before auth');
});

t.test('without a secret, a job before auth is refused too', async (t) => {
  const dir = t.testdir();
  const agent = await startAgent(t, { slots: 1, ...noSecret() });
  const marker = join(dir, 'marker');
  const eager = await TestClient.connect(t, agent.port);
  eager.submit({ argv: ['/bin/sh', '-c', `touch ${marker}`] });
  t.match(await eager.waitFor((m) => m.type === 'error'), { code: 'MPM_ERR_AUTH' });
  await eager.closed;
  const good = await TestClient.ready(t, agent.port, null);
  await good.run('true', { cwd: '/' });
  t.notOk(existsSync(marker));
});

t.test('a client of another protocol version is refused', async (t) => {
  const agent = await startAgent(t, { slots: 1 });
  const client = await TestClient.connect(t, agent.port);
  await client.waitFor((m) => m.type === 'hello');
  client.send({
    type: 'auth',
    version: PROTOCOL_VERSION + 1,
    proof: new Uint8Array(0),
    client: { user: 'u', host: 'h', pid: 1, build: 'b' },
  });
  t.match(await client.waitFor((m) => m.type === 'error'), { code: 'MPM_ERR_PROTOCOL' });
  await client.closed;
});

t.test('probe: ok, missing, different', async (t) => {
  const dir = t.testdir({ probe: 'token-123' });
  const agent = await startAgent(t, { slots: 1 });
  const client = await TestClient.ready(t, agent.port);
  const probe = async (id: number, path: string, content: string): Promise<unknown> => {
    client.send({ type: 'probe', id, path, content });
    return client.waitFor((m) => m.type === 'probe-result' && m.id === id);
  };
  t.match(await probe(1, join(dir, 'probe'), 'token-123'), { ok: true });
  t.match(await probe(2, join(dir, 'nope'), 'token-123'), {
    ok: false,
    reason: /no such file: .*nope — does this node see the same file system\?/,
  });
  t.match(await probe(3, join(dir, 'probe'), 'token-456'), {
    ok: false,
    reason: /content differs — stale NFS attribute cache\?/,
  });
});
