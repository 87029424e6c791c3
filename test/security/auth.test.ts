/**
 * Authentication: a wrong or missing secret closes the connection and is
 * logged with the peer's address; a proof is bound to its connection (a
 * replayed one fails); the agent proves the secret back (mutual auth) and
 * mpmake sends nothing of a build to an agent that cannot.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { authFor } from '../../lib/client/agent-dial.js';
import {
  newChallenge,
  proveAgent,
  proveClient,
  verifyAgentProof,
} from '../../lib/protocol/auth.js';
import { encodeFrame, FrameDecoder } from '../../lib/protocol/frame-codec.js';
import {
  PROTOCOL_VERSION,
  type AuthMessage,
  type ErrorMessage,
  type HelloMessage,
  type WelcomeMessage,
} from '../../lib/protocol/messages.js';
import { MAX_HANDSHAKES_PER_ADDRESS } from '../../lib/agent/agent-server.js';
import { PRE_AUTH_MAX_FRAME_BYTES } from '../../lib/agent/agent-session.js';
import { startAgent, TestClient, type Teardown } from '../agent/client.js';
import { cleanEnv, runMpmake } from '../helpers/run.js';
import { agentLog, secretFile, waitUntil } from '../helpers/security.js';

const SECRET = 'auth-test secret 3f9c1e';
const client = { user: 'test', host: 'test', pid: process.pid, build: 'auth-test' };

t.test('a wrong or missing secret: closed, logged with the peer address', async (t) => {
  const dir = t.testdir();
  const agent = await startAgent(t, { slots: 1, secretFile: secretFile(dir, SECRET) });
  const log = agentLog(agent);
  const marker = join(dir, 'marker');
  for (const [what, secret] of [
    ['wrong secret', Buffer.from('not the secret')],
    ['no proof', undefined],
  ] as const) {
    const c = await TestClient.connect(t, agent.port);
    const port = c.socket.localPort;
    const hello = await c.waitFor<HelloMessage>((m) => m.type === 'hello');
    // The auth, and a job right behind it in the same write.
    c.send(authFor(secret, hello, c.socket, client).auth);
    c.submit({ argv: ['/bin/sh', '-c', `touch ${marker}`] });
    t.match(await c.waitFor<ErrorMessage>((m) => m.type === 'error'), { code: 'MPM_ERR_AUTH' });
    await c.closed;
    t.notOk(
      c.messages.some((m) => m.type === 'welcome' || m.type === 'load'),
      `${what}: nothing after hello`,
    );
    await waitUntil(
      () => log.text().includes(`127.0.0.1:${port}: authentication failed; closing`),
      `the log line for ${what}`,
    );
  }
  const good = await TestClient.ready(t, agent.port, Buffer.from(SECRET));
  await good.run('true');
  t.notOk(existsSync(marker), 'no job ran');
});

t.test('a captured proof replayed on a new connection fails', async (t) => {
  const dir = t.testdir();
  const agent = await startAgent(t, { slots: 1, secretFile: secretFile(dir, SECRET) });
  const first = await TestClient.connect(t, agent.port);
  const hello1 = await first.waitFor<HelloMessage>((m) => m.type === 'hello');
  const captured: AuthMessage = authFor(Buffer.from(SECRET), hello1, first.socket, client).auth;
  first.send(captured);
  await first.waitFor((m) => m.type === 'welcome');

  // An eavesdropper replays the very bytes on a connection of its own.
  const replay = await TestClient.connect(t, agent.port);
  const hello2 = await replay.waitFor<HelloMessage>((m) => m.type === 'hello');
  t.not(
    Buffer.from(hello2.challenge).toString('hex'),
    Buffer.from(hello1.challenge).toString('hex'),
    'each connection has its own challenge',
  );
  replay.socket.write(encodeFrame(captured));
  t.match(await replay.waitFor((m) => m.type === 'error'), { code: 'MPM_ERR_AUTH' });
  await replay.closed;
  t.notOk(
    replay.messages.some((m) => m.type === 'welcome'),
    'the replay is refused',
  );
});

t.test('mutual auth: the agent signs the client nonce', async (t) => {
  const dir = t.testdir();
  const secret = Buffer.from(SECRET);
  const agent = await startAgent(t, { slots: 1, secretFile: secretFile(dir, SECRET) });
  const c = await TestClient.connect(t, agent.port);
  const hello = await c.waitFor<HelloMessage>((m) => m.type === 'hello');
  const { auth, binding } = authFor(secret, hello, c.socket, client);
  c.send(auth);
  const welcome = await c.waitFor<WelcomeMessage>((m) => m.type === 'welcome');
  t.ok(binding && verifyAgentProof(secret, binding, welcome.proof), 'the proof checks out');
  if (!binding) return;
  t.notOk(
    verifyAgentProof(secret, { ...binding, nonce: newChallenge() }, welcome.proof),
    'it answers this nonce only',
  );
  t.notOk(
    verifyAgentProof(secret, { ...binding, endpoint: '127.0.0.1:1' }, welcome.proof),
    'and this endpoint only',
  );
  t.notOk(
    verifyAgentProof(Buffer.from('other'), binding, welcome.proof),
    'and only under this secret',
  );
  t.notOk(
    verifyAgentProof(secret, binding, proveClient(secret, binding)),
    "a client's proof never passes for an agent's",
  );

  // Without a nonce (an older client), the auth is refused: nothing binds it.
  const old = await TestClient.connect(t, agent.port);
  const ho = await old.waitFor<HelloMessage>((m) => m.type === 'hello');
  const noNonce = { ...authFor(secret, ho, old.socket, client).auth };
  delete noNonce.nonce;
  old.send(noNonce);
  t.match(await old.waitFor((m) => m.type === 'error'), { code: 'MPM_ERR_AUTH' });
  await old.closed;
  t.notOk(old.messages.some((m) => m.type === 'welcome'));

  // A nonce longer than the limit is a malformed auth.
  const greedy = await TestClient.connect(t, agent.port);
  const h = await greedy.waitFor<HelloMessage>((m) => m.type === 'hello');
  greedy.send({ ...authFor(secret, h, greedy.socket, client).auth, nonce: new Uint8Array(65) });
  await greedy.closed;
  t.notOk(greedy.messages.some((m) => m.type === 'welcome'));
});

/**
 * A fake agent: says hello, accepts any auth, and answers with a welcome
 * built by `welcome` (no proof, a forged one…). Records every message.
 */
async function fakeAgent(
  t: Teardown,
  opts: { authRequired: boolean; welcome: (auth: AuthMessage, challenge: Uint8Array) => object },
): Promise<{ port: number; received: unknown[] }> {
  const received: unknown[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    const challenge = newChallenge();
    const decoder = new FrameDecoder();
    socket.on('error', () => {});
    socket.write(
      encodeFrame({
        type: 'hello',
        version: PROTOCOL_VERSION,
        challenge,
        authRequired: opts.authRequired,
        nodeId: 'rogue',
      }),
    );
    socket.on('data', (chunk: Buffer) => {
      for (const m of decoder.push(chunk)) {
        received.push(m);
        const msg = m as { type: string; seq?: number };
        if (msg.type === 'auth') {
          socket.write(encodeFrame(opts.welcome(m as AuthMessage, challenge)));
          const load = { type: 'load', slots: 4, running: 0, queued: 0, loadavg1: 0, cpus: 4 };
          socket.write(encodeFrame({ ...load, freeMemBytes: 1e9, clockMs: Date.now() }));
        } else if (msg.type === 'ping') {
          socket.write(encodeFrame({ type: 'pong', seq: msg.seq, clockMs: Date.now() }));
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as { port: number }).port, received };
}

const welcomeBase = {
  type: 'welcome',
  nodeId: 'rogue',
  instance: 'rogue-instance',
  hostname: 'rogue',
  agentVersion: '0',
  slots: 4,
  cpus: 4,
};

t.test('mpmake sends nothing of a build to an agent that cannot prove the secret', async (t) => {
  const variants: [string, boolean, (a: AuthMessage, c: Uint8Array) => object][] = [
    ['no proof', true, () => ({ ...welcomeBase, clockMs: Date.now() })],
    [
      'a proof under another secret',
      true,
      (a, c) => ({
        ...welcomeBase,
        clockMs: Date.now(),
        proof: proveAgent(Buffer.from('guess'), {
          challenge: c,
          nonce: a.nonce ?? new Uint8Array(0),
          nodeId: 'rogue',
          endpoint: a.endpoint ?? '',
        }),
      }),
    ],
    ['an agent without a secret', false, () => ({ ...welcomeBase, clockMs: Date.now() })],
  ];
  for (const [name, authRequired, welcome] of variants) {
    t.test(name, async (t) => {
      const dir = t.testdir({
        Makefile: 'all:\n\t@echo "$$SOME_VALUE" > out.txt\n',
      });
      const rogue = await fakeAgent(t, { authRequired, welcome });
      const report = join(dir, 'report.json');
      const r = await runMpmake(
        [
          `--mp-hosts=127.0.0.1:${rogue.port}/4`,
          `--mp-secret-file=${secretFile(dir, SECRET)}`,
          `--mp-report=${report}`,
          '--mp-local=',
        ],
        { cwd: dir, env: cleanEnv({ SOME_VALUE: 'private-value-91' }) },
      );
      t.equal(r.code, 0, 'the build runs locally instead');
      t.match(
        r.stderr.toString(),
        /leaving out 127\.0\.0\.1:\d+: the agent did not prove that it holds the cluster's secret.*\[MPM_ERR_AGENT_AUTH\]/,
      );
      t.equal(readFileSync(join(dir, 'out.txt'), 'utf8'), 'private-value-91\n');
      t.same(
        rogue.received.map((m) => (m as { type: string }).type),
        ['auth'],
        'the rogue got our auth and nothing else: no job, no environment, no probe',
      );
      t.match(JSON.parse(readFileSync(report, 'utf8')), { mode: 'local-fallback' });
    });
  }
});

t.test('before auth, frames are limited to 64 KiB; after it, to the full limit', async (t) => {
  const dir = t.testdir();
  const agent = await startAgent(t, { slots: 1, secretFile: secretFile(dir, SECRET) });
  const big = await TestClient.connect(t, agent.port);
  await big.waitFor((m) => m.type === 'hello');
  const header = Buffer.alloc(4);
  header.writeUInt32BE(PRE_AUTH_MAX_FRAME_BYTES + 1);
  big.socket.write(header);
  t.match(await big.waitFor((m) => m.type === 'error'), { message: /larger than the limit/ });
  await big.closed;

  const good = await TestClient.ready(t, agent.port, Buffer.from(SECRET));
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/bin:/bin' };
  for (let i = 0; i < 20; i++) env[`BIG_${i}`] = 'x'.repeat(10_000);
  const r = await good.run('echo ${#BIG_19}', { env });
  t.equal(r.stdout.toString(), '10000\n', 'a 200 KB job frame after auth');
});

t.test('one address cannot pile up unauthenticated connections', async (t) => {
  const dir = t.testdir();
  const agent = await startAgent(t, { slots: 1, secretFile: secretFile(dir, SECRET) });
  const log = agentLog(agent);
  const idle: TestClient[] = [];
  for (let i = 0; i < MAX_HANDSHAKES_PER_ADDRESS; i++) {
    const c = await TestClient.connect(t, agent.port);
    await c.waitFor((m) => m.type === 'hello');
    idle.push(c);
  }
  // One more from the same address gets in; the oldest silent one goes.
  const later = await TestClient.ready(t, agent.port, Buffer.from(SECRET));
  await idle[0]!.closed;
  await waitUntil(() => /closed to make room for/.test(log.text()), 'the log line');
  t.equal((await later.run('echo ok')).stdout.toString(), 'ok\n');
});

t.test('a client that never authenticates is cut off after 5 s', async (t) => {
  const dir = t.testdir();
  const agent = await startAgent(t, { slots: 1, secretFile: secretFile(dir, SECRET) });
  const log = agentLog(agent);
  const silent = await TestClient.connect(t, agent.port);
  const port = silent.socket.localPort;
  await silent.waitFor((m) => m.type === 'hello');
  t.match(await silent.waitFor((m) => m.type === 'error', 'the timeout', 15_000), {
    code: 'MPM_ERR_AUTH',
    message: /no auth within the time limit/,
  });
  await silent.closed;
  await waitUntil(
    () => log.text().includes(`127.0.0.1:${port}: did not authenticate in time`),
    'the log line',
  );
});
