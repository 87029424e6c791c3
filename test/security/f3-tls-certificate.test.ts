/**
 * Audit F3 (medium): a TLS client accepted any certificate that chains to
 * a trusted CA in place of the PSK, then sent its proof to a server that
 * did not know the secret. Now only the PSK authenticates an agent: a
 * certificate ends the handshake, and nothing is sent.
 * (`NODE_EXTRA_CA_CERTS` stands in for "publicly trusted", as in the audit.)
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type TLSSocket } from 'node:tls';
import t from 'tap';
import { runMpm } from '../cluster-view/mpm.js';
import { cleanEnv, runMpmake } from '../helpers/run.js';
import { rogueHello, secretFile } from '../helpers/security.js';

t.test('F3: a certificate, even a trusted one, is no substitute for the PSK', async (t) => {
  const dir = t.testdir({ Makefile: 'all:\n\t@echo built > out.txt\n' });
  const key = join(dir, 'rogue.key');
  const cert = join(dir, 'rogue.crt');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '1',
    '-keyout', key, '-out', cert,
  ], { stdio: 'ignore' }); // prettier-ignore
  // The audit's rogue-tls.mjs: TLS 1.3 with a certificate, no PSK; says hello, records what comes.
  let received = 0;
  const sockets = new Set<TLSSocket>();
  const server = createServer(
    { key: readFileSync(key), cert: readFileSync(cert), minVersion: 'TLSv1.3' },
    (s) => {
      sockets.add(s);
      s.on('error', () => {});
      s.on('data', (b: Buffer) => (received += b.length));
      s.write(rogueHello());
    },
  );
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const port = (server.address() as { port: number }).port;
  const secret = secretFile(dir, 'f3 test secret 0a9be3d1f7');
  const env = cleanEnv({ NODE_EXTRA_CA_CERTS: cert });

  const r = await runMpmake(
    [`--mp-hosts=127.0.0.1:${port}/2`, `--mp-secret-file=${secret}`, '--mp-tls'],
    { cwd: dir, env },
  );
  t.equal(r.code, 0, 'the build runs (locally)');
  t.equal(readFileSync(join(dir, 'out.txt'), 'utf8'), 'built\n');
  t.match(
    r.stderr.toString(),
    /leaving out 127\.0\.0\.1:\d+: TLS handshake failed \(the agent presented a certificate: only the cluster secret \(PSK\) may authenticate it\)/,
  );

  const s = await runMpm(
    ['status', '--tls', '--hosts', `127.0.0.1:${port}`, '--secret-file', secret],
    { cwd: dir, env },
  );
  t.match(s.stdout.toString(), /refused.*presented a certificate/);
  t.equal(received, 0, 'the rogue got no proof, no byte of application data');
});
