/**
 * Audit F2 (high): without TLS, whoever answered on a host:port of the list
 * could relay the client's handshake to another agent: the proof bound only
 * the challenge the peer chose, so the other agent accepted it, and the
 * relay injected its own job into the authenticated session. Now both
 * proofs cover both nonces, the agent's name and the endpoint the client
 * dialled: the relayed proof is refused, nothing runs, and the client
 * leaves the relay out.
 */
import { existsSync, readFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { encodeFrame, FrameDecoder } from '../../lib/protocol/frame-codec.js';
import { startAgent, type Teardown } from '../agent/client.js';
import { runMpm } from '../cluster-view/mpm.js';
import { cleanEnv, runMpmake } from '../helpers/run.js';
import { secretFile } from '../helpers/security.js';

const SECRET = 'f2 relay test secret 81c4e2a7';

/**
 * The audit's rogue-relay.mjs: relays every frame between the client and
 * the agent at `upstream`; once that agent welcomes the relayed proof, it
 * sends a job of its own that creates `marker`.
 */
async function rogueRelay(
  t: Teardown,
  upstream: number,
  marker: string,
): Promise<{ port: number; welcomed: () => boolean; proofs: () => number }> {
  let welcomed = false;
  let proofs = 0;
  const sockets = new Set<Socket>();
  const server = createServer((down) => {
    const up = connect({ host: '127.0.0.1', port: upstream });
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        down.destroy();
        up.destroy();
      });
    }
    const upFrames = new FrameDecoder();
    up.on('data', (chunk: Buffer) => {
      for (const m of upFrames.push(chunk) as { type?: unknown }[]) {
        if (m.type === 'welcome') {
          welcomed = true;
          up.write(
            encodeFrame({
              type: 'job',
              id: 999_999,
              argv: ['/bin/sh', '-c', `touch ${marker}`],
              cwd: '/tmp',
              env: { PATH: '/usr/bin:/bin' },
              umask: 0o22,
            }),
          );
        }
        down.write(encodeFrame(m));
      }
    });
    const downFrames = new FrameDecoder();
    down.on('data', (chunk: Buffer) => {
      for (const m of downFrames.push(chunk) as { type?: unknown }[]) {
        if (m.type === 'auth') proofs++;
        up.write(encodeFrame(m));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return {
    port: (server.address() as { port: number }).port,
    welcomed: () => welcomed,
    proofs: () => proofs,
  };
}

t.test('F2: a relayed handshake gets nothing, from mpmake or mpm status', async (t) => {
  const dir = t.testdir({ Makefile: 'all:\n\t@echo built > out.txt\n' });
  const secret = secretFile(dir, SECRET);
  const nodeY = await startAgent(t, { slots: 2, secretFile: secret });
  const marker = join(dir, 'pwned');
  const relay = await rogueRelay(t, nodeY.port, marker);

  const r = await runMpmake(
    [`--mp-hosts=127.0.0.1:${relay.port}/2`, `--mp-secret-file=${secret}`],
    {
      cwd: dir,
      env: cleanEnv(),
    },
  );
  t.equal(r.code, 0, 'the build runs (locally)');
  t.equal(readFileSync(join(dir, 'out.txt'), 'utf8'), 'built\n');
  t.ok(relay.proofs() >= 1, 'the relay forwarded our proof');
  t.notOk(relay.welcomed(), 'the agent behind it refused the relayed proof');
  t.match(
    r.stderr.toString(),
    new RegExp(
      `leaving out 127\\.0\\.0\\.1:${relay.port}: authentication failed: the client dialled ` +
        `127\\.0\\.0\\.1:${relay.port}, but this agent is 127\\.0\\.0\\.1:${nodeY.port}`,
    ),
  );

  const s = await runMpm(
    ['status', '--hosts', `127.0.0.1:${relay.port}`, '--secret-file', secret],
    {
      cwd: dir,
      env: cleanEnv(),
    },
  );
  t.match(s.stdout.toString(), /refused.*auth failed: authentication failed: the client dialled/);
  t.notOk(relay.welcomed(), 'mpm status gave the relay nothing either');
  t.notOk(existsSync(marker), 'the injected job never ran');
});
