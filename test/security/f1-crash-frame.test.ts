/**
 * Audit F1 (critical): a 25-byte frame `{type: {toString: 0}}` before
 * authentication made `String(v.type)` throw inside the socket's data
 * handler and ended the whole agent; the same class after auth (an object
 * as `auth.client.user`), and on the client side (a rogue host in the host
 * list crashed mpmake and `mpm status`). Now every message passes one
 * schema first, and a bad one closes that connection alone.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { authFor } from '../../lib/client/agent-dial.js';
import { encodeFrame } from '../../lib/protocol/frame-codec.js';
import { type ErrorMessage, type HelloMessage } from '../../lib/protocol/messages.js';
import { startAgent, TestClient, type Teardown } from '../agent/client.js';
import { runMpm } from '../cluster-view/mpm.js';
import { cleanEnv, runMpmake } from '../helpers/run.js';
import { agentLog, secretFile } from '../helpers/security.js';

const SECRET = 'f1 test secret 5b1e07c9d2';
/** The audit's crash.bin: length 0x15, msgpack {"type": {"toString": 0}} (map16 headers). */
const CRASH_FRAME = Buffer.from('00000015de0001a474797065de0001a8746f537472696e6700', 'hex');

t.test('F1 before auth: the 25-byte frame closes that connection only', async (t) => {
  const dir = t.testdir();
  const agent = await startAgent(t, { slots: 1, secretFile: secretFile(dir, SECRET) });
  const log = agentLog(agent);
  // A client already at work, which must not notice.
  const bystander = await TestClient.ready(t, agent.port, Buffer.from(SECRET));

  const attacker = await TestClient.connect(t, agent.port);
  await attacker.waitFor((m) => m.type === 'hello');
  attacker.socket.write(CRASH_FRAME);
  t.match(await attacker.waitFor<ErrorMessage>((m) => m.type === 'error'), {
    code: 'MPM_ERR_PROTOCOL',
    message: 'unknown message type object',
  });
  await attacker.closed;

  // The same with valueOf too, an array, a number.
  for (const type of [{ toString: 0, valueOf: 0 }, ['job'], 1]) {
    const c = await TestClient.connect(t, agent.port);
    await c.waitFor((m) => m.type === 'hello');
    c.socket.write(encodeFrame({ type }));
    t.match(await c.waitFor<ErrorMessage>((m) => m.type === 'error'), {
      code: 'MPM_ERR_PROTOCOL',
    });
    await c.closed;
  }
  t.equal(agent.process.exitCode, null, 'the agent is still running');
  t.equal((await bystander.run('echo still-here')).stdout.toString(), 'still-here\n');
  const later = await TestClient.ready(t, agent.port, Buffer.from(SECRET));
  t.equal((await later.run('echo new')).stdout.toString(), 'new\n', 'new clients are served');
  t.match(log.text(), /protocol error: unknown message type object; closing/);
});

t.test('F1 after auth: an object where auth.client wants a string is refused', async (t) => {
  const dir = t.testdir();
  const agent = await startAgent(t, { slots: 1, secretFile: secretFile(dir, SECRET) });
  const bystander = await TestClient.ready(t, agent.port, Buffer.from(SECRET));
  for (const client of [
    { user: { toString: 0 }, host: 'h', pid: 1, build: 'b' },
    { user: 'u', host: 'h', pid: { valueOf: 0 }, build: 'b' },
    { user: 'u', host: 'h', pid: 1, build: 'b', heartbeatTimeoutMs: 'soon' },
  ]) {
    const c = await TestClient.connect(t, agent.port);
    const hello = await c.waitFor<HelloMessage>((m) => m.type === 'hello');
    const { auth } = authFor(Buffer.from(SECRET), hello, c.socket, {
      user: 'u',
      host: 'h',
      pid: 1,
      build: 'b',
    });
    c.socket.write(encodeFrame({ ...auth, client }));
    t.match(await c.waitFor<ErrorMessage>((m) => m.type === 'error'), {
      code: 'MPM_ERR_PROTOCOL',
      message: /^malformed auth: "\/client\//,
    });
    await c.closed;
    t.notOk(
      c.messages.some((m) => m.type === 'welcome'),
      'no welcome',
    );
  }
  t.equal(agent.process.exitCode, null, 'the agent is still running');
  t.equal((await bystander.run('echo ok')).stdout.toString(), 'ok\n');
});

/** The audit's rogue-crash-client: answers every connection with the crash message. */
async function rogueHost(t: Teardown): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.write(CRASH_FRAME);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return (server.address() as { port: number }).port;
}

t.test('F1 client side: a rogue host in the list cannot crash mpmake or mpm status', async (t) => {
  const dir = t.testdir({ Makefile: 'all:\n\t@echo built > out.txt\n' });
  const agent = await startAgent(t, { slots: 2, secretFile: secretFile(dir, SECRET) });
  const rogue = await rogueHost(t);
  const secret = join(dir, 'secret');
  const hosts = `127.0.0.1:${rogue}/2,127.0.0.1:${agent.port}/2`;
  const r = await runMpmake([`--mp-hosts=${hosts}`, `--mp-secret-file=${secret}`, '--mp-local='], {
    cwd: dir,
    env: cleanEnv(),
  });
  t.equal(r.code, 0, `mpmake ends normally: ${r.stderr.toString()}`);
  t.equal(readFileSync(join(dir, 'out.txt'), 'utf8'), 'built\n');
  t.match(
    r.stderr.toString(),
    new RegExp(`leaving out 127\\.0\\.0\\.1:${rogue}: not an mpmake agent`),
  );
  t.notMatch(r.stderr.toString(), /TypeError/);

  const s = await runMpm(['status', '--hosts', hosts, '--secret-file', secret], {
    cwd: dir,
    env: cleanEnv(),
  });
  const out = s.stdout.toString() + s.stderr.toString();
  t.notMatch(out, /TypeError/);
  t.match(
    out,
    new RegExp(`127\\.0\\.0\\.1:${rogue}\\s+\\S*\\s*(refused|down).*not an mpmake agent`),
  );
  t.match(out, new RegExp(`127\\.0\\.0\\.1:${agent.port}\\s+up`));
});
