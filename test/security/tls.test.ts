/**
 * TLS on the agent channel (`mpm agent --tls`, `mpmake --mp-tls`): TLS 1.3
 * keyed by the shared secret. Nothing travels in clear; a client with
 * another secret, or without TLS, gets nothing and runs nothing.
 */
import { existsSync, readFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { connectTls } from '../../lib/protocol/tls.js';
import { encodeFrame } from '../../lib/protocol/frame-codec.js';
import { PROTOCOL_VERSION } from '../../lib/protocol/messages.js';
import { startAgent, TestClient, type Teardown } from '../agent/client.js';
import { cleanEnv, runMpmake } from '../helpers/run.js';
import { agentLog, mpm, secretFile, waitUntil } from '../helpers/security.js';

const SECRET = 'tls-test secret 7d2a90';
const secret = Buffer.from(SECRET);

/** A TCP relay to `port` that records every byte, both ways: what a wiretap sees. */
async function wiretap(t: Teardown, port: number): Promise<{ port: number; seen(): Buffer }> {
  const chunks: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((inbound) => {
    const outbound = connect({ host: '127.0.0.1', port });
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.on('data', (b: Buffer) => {
      chunks.push(b);
      outbound.write(b);
    });
    outbound.on('data', (b: Buffer) => {
      chunks.push(b);
      inbound.write(b);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return {
    port: (server.address() as { port: number }).port,
    seen: () => Buffer.concat(chunks),
  };
}

t.test('--tls needs a secret', async (t) => {
  const r = await mpm(['agent', '--listen', '127.0.0.1:0', '--tls', '--allow-root']);
  t.equal(r.code, 2);
  t.match(r.stderr, /--tls needs --secret-file/);
});

t.test('a client with the secret: TLS 1.3, and nothing readable on the wire', async (t) => {
  const dir = t.testdir();
  const agent = await startAgent(t, {
    slots: 1,
    secretFile: secretFile(dir, SECRET),
    extraArgs: ['--tls'],
  });
  const tap = await wiretap(t, agent.port);
  const socket = connectTls('127.0.0.1', tap.port, secret);
  const client = await TestClient.attach(t, socket, 'secureConnect');
  t.equal(socket.getProtocol(), 'TLSv1.3');
  t.match(socket.getCipher().name, /^TLS_(AES_128_GCM|CHACHA20_POLY1305)_SHA256$/);
  await client.authenticate(secret, agent.port);
  const marker = 'wire-marker-5c1b7e';
  const r = await client.run('echo "out-$VALUE"; echo "$0" >/dev/null', {
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', VALUE: `${marker}-env` },
  });
  t.equal(r.stdout.toString(), `out-${marker}-env\n`);
  const wire = tap.seen().toString('latin1');
  t.ok(wire.length > 0, 'the wiretap saw the traffic');
  for (const text of [marker, 'hello', 'welcome', 'echo', 'PATH']) {
    t.notOk(wire.includes(text), `"${text}" is not on the wire`);
  }

  // The same through a plain agent shows what the wiretap would read.
  const plain = await startAgent(t, { slots: 1, secretFile: secretFile(dir, SECRET, 's2') });
  const tap2 = await wiretap(t, plain.port);
  const c2 = await TestClient.attach(t, connect({ host: '127.0.0.1', port: tap2.port }));
  await c2.authenticate(secret, plain.port);
  await c2.run(`echo ${marker}`);
  t.ok(tap2.seen().toString('latin1').includes(marker), 'without TLS the output is readable');
});

t.test('another secret, or no TLS: no hello, nothing runs, logged', async (t) => {
  const dir = t.testdir();
  const agent = await startAgent(t, {
    slots: 1,
    secretFile: secretFile(dir, SECRET),
    extraArgs: ['--tls'],
  });
  const log = agentLog(agent);

  const wrong = connectTls('127.0.0.1', agent.port, Buffer.from('another secret'));
  const err = await new Promise<Error>((resolve) => {
    wrong.once('error', resolve);
    wrong.once('secureConnect', () => resolve(new Error('connected')));
  });
  wrong.destroy();
  t.match(
    err.message,
    /SSL|alert|decrypt|handshake|before secure TLS connection/i,
    'the handshake fails',
  );
  await waitUntil(() => /TLS: /.test(log.text()), 'the TLS failure in the log');

  // A plain client: the agent says nothing in clear, and a job goes nowhere.
  const marker = join(dir, 'marker');
  const plain = connect({ host: '127.0.0.1', port: agent.port });
  t.teardown(() => plain.destroy());
  await new Promise((resolve) => plain.once('connect', resolve));
  const received: Buffer[] = [];
  plain.on('data', (b: Buffer) => received.push(b));
  plain.on('error', () => {});
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.equal(Buffer.concat(received).length, 0, 'no hello in clear');
  plain.write(
    Buffer.concat([
      encodeFrame({
        type: 'auth',
        version: PROTOCOL_VERSION,
        proof: new Uint8Array(32),
        client: { user: 'u', host: 'h', pid: 1, build: 'b' },
      }),
      encodeFrame({
        type: 'job',
        id: 1,
        argv: ['/bin/sh', '-c', `touch ${marker}`],
        cwd: dir,
        env: {},
        umask: 0o22,
      }),
    ]),
  );
  await new Promise((resolve) => plain.once('close', resolve));
  const good = await TestClient.attach(
    t,
    connectTls('127.0.0.1', agent.port, secret),
    'secureConnect',
  );
  await good.authenticate(secret);
  await good.run('true');
  t.notOk(existsSync(marker), 'the plain job never ran');
});

t.test('mpmake --mp-tls builds through a TLS agent; without it, says what to do', async (t) => {
  const dir = t.testdir({
    Makefile: 'all: a b\na b:\n\t@echo "$@ on $$MPMAKE_NODE" > $@.txt\n',
  });
  const secretPath = secretFile(dir, SECRET);
  const agent = await startAgent(t, {
    slots: 2,
    id: 'tls-node',
    secretFile: secretPath,
    env: cleanEnv(),
    extraArgs: ['--tls'],
  });
  const report = join(dir, 'report.json');
  const base = [`--mp-hosts=${agent.hostSpec}`, `--mp-secret-file=${secretPath}`, '--mp-local='];
  const ok = await runMpmake([...base, '--mp-tls', `--mp-report=${report}`, '-j2'], {
    cwd: dir,
  });
  t.equal(ok.code, 0, ok.stderr.toString());
  t.equal(readFileSync(join(dir, 'a.txt'), 'utf8'), 'a on tls-node\n');
  t.match(JSON.parse(readFileSync(report, 'utf8')), { mode: 'cluster', jobs: { remote: 2 } });

  const env = cleanEnv({ MPMAKE_TLS: '1' });
  const viaEnv = await runMpmake([...base, '-B', '--mp-no-fallback'], { cwd: dir, env });
  t.equal(viaEnv.code, 0, 'MPMAKE_TLS=1 does the same');

  const noTls = await runMpmake([...base, '-B', '--mp-no-fallback', '--mp-connect-timeout=1000'], {
    cwd: dir,
  });
  // Regression (the client waited out its whole node wait, ~33 s, retrying an
  // agent that would never say hello): it tells a TLS agent apart and stops.
  t.equal(noTls.code, 2);
  t.match(
    noTls.stderr.toString(),
    /leaving out .*: connected, but no agent hello within 1000 ms, and a TLS handshake with our secret succeeds there: the agent runs with --tls; reach it over TLS \(mpmake --mp-tls, .*\) \[MPM_ERR_TLS\]\nmpmake: no agent is usable \(see the lines above\) and --mp-no-fallback is set \[MPM_ERR_NO_AGENTS\]/,
  );
  t.notMatch(noTls.stderr.toString(), /no agent became ready/, 'refused, not waited for');

  const wrong = secretFile(dir, 'another secret, not ours', 'wrong');
  const bad = await runMpmake(
    [
      `--mp-hosts=${agent.hostSpec}`,
      `--mp-secret-file=${wrong}`,
      '--mp-tls',
      '-B',
      '--mp-no-fallback',
    ],
    { cwd: dir },
  );
  t.equal(bad.code, 2);
  t.match(bad.stderr.toString(), /leaving out .*: TLS handshake failed.*\[MPM_ERR_TLS\]/);

  const plainAgent = await startAgent(t, { slots: 1, secretFile: secretPath, env: cleanEnv() });
  const mismatch = await runMpmake(
    [
      `--mp-hosts=${plainAgent.hostSpec}`,
      `--mp-secret-file=${secretPath}`,
      '--mp-tls',
      '-B',
      '--mp-no-fallback',
    ],
    { cwd: dir },
  );
  t.equal(mismatch.code, 2);
  // It said "TLS handshake failed (80AC…:error:0A00010B:SSL routines:…:
  // wrong version number:../deps/openssl/…:350:): …".
  t.match(
    mismatch.stderr.toString(),
    /leaving out [^\n]*: TLS handshake failed: the agent answered in plaintext, so it does not run with --tls; [^\n]*\[MPM_ERR_TLS\]/,
  );
  t.notMatch(mismatch.stderr.toString(), /SSL routines|openssl/, "no OpenSSL's internals");
});

t.test('--mp-tls without a secret is a usage error', async (t) => {
  const dir = t.testdir({ Makefile: 'all:\n\t@true\n' });
  const r = await runMpmake(['--mp-hosts=127.0.0.1:1', '--mp-tls'], {
    cwd: dir,
    env: cleanEnv({ MPMAKE_SECRET_FILE: '' }),
  });
  t.equal(r.code, 2);
  t.match(r.stderr.toString(), /--mp-tls needs the cluster secret.*\[MPM_ERR_USAGE\]/);
});
