/**
 * Audit F12 (low): `mpm status` / `mpm top` opened plain TCP only and never
 * checked the agent's proof: against a TLS cluster every node showed down
 * (`--tls` was "Unknown argument"; MPMAKE_TLS=1 and config `tls` were
 * ignored), and a rogue got a proof in clear. Now they dial through
 * lib/client/agent-dial.ts, as mpmake does: TLS by flag, environment or
 * config, and the agent must prove the secret.
 */
import { writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { encodeFrame, FrameDecoder } from '../../lib/protocol/frame-codec.js';
import { startAgent } from '../agent/client.js';
import { runMpm } from '../cluster-view/mpm.js';
import { cleanEnv } from '../helpers/run.js';
import { rogueHello, secretFile } from '../helpers/security.js';

const SECRET = 'f12 test secret 4c07d9e1aa';

t.test('F12: mpm status speaks TLS by --tls, MPMAKE_TLS=1 and config tls', async (t) => {
  const dir = t.testdir();
  const secret = secretFile(dir, SECRET);
  const agent = await startAgent(t, { slots: 2, secretFile: secret, extraArgs: ['--tls'] });
  const host = `127.0.0.1:${agent.port}`;
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({ tls: true, hosts: host, secretFile: secret }));
  const up = new RegExp(`${host.replace(/\./g, '\\.')}\\s+up`);
  for (const [what, args, env] of [
    ['--tls', ['--tls', '--hosts', host, '--secret-file', secret], cleanEnv()],
    ['MPMAKE_TLS=1', ['--hosts', host, '--secret-file', secret], cleanEnv({ MPMAKE_TLS: '1' })],
    ['config tls', ['--config', config, '--secret-file', secret], cleanEnv()],
  ] as const) {
    const r = await runMpm(['status', ...args], { cwd: dir, env });
    t.match(r.stdout.toString(), up, `${what}: the TLS agent is up`);
  }
  const plain = await runMpm(['status', '--hosts', host, '--secret-file', secret], {
    cwd: dir,
    env: cleanEnv(),
  });
  t.notMatch(plain.stdout.toString(), up, 'plaintext to a TLS agent gets nowhere');
});

t.test('F12: mpm status checks the agent proves the secret', async (t) => {
  const dir = t.testdir();
  const secret = secretFile(dir, SECRET);
  // A rogue without the secret: welcomes any auth, with no proof.
  const sockets = new Set<Socket>();
  let statusRequests = 0;
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.write(rogueHello());
    const frames = new FrameDecoder();
    s.on('data', (b: Buffer) => {
      for (const m of frames.push(b) as { type: string }[]) {
        if (m.type === 'status-request') statusRequests++;
        if (m.type !== 'auth') continue;
        s.write(
          encodeFrame({
            type: 'welcome',
            nodeId: 'rogue',
            instance: 'x',
            hostname: 'rogue',
            agentVersion: '0',
            slots: 4,
            cpus: 4,
            clockMs: Date.now(),
          }),
        );
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const port = (server.address() as { port: number }).port;
  const r = await runMpm(['status', '--hosts', `127.0.0.1:${port}`, '--secret-file', secret], {
    cwd: dir,
    env: cleanEnv(),
  });
  t.match(r.stdout.toString(), /refused.*did not prove that it holds the cluster's secret/);
  t.equal(statusRequests, 0, 'nothing asked of an agent that proved nothing');
});
