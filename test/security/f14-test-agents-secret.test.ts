/**
 * F14 (audit 2026-12): the agents tests and benchmarks start listened on
 * loopback with no secret (and `--allow-root` under a root run), so any
 * local user could run commands as root while the suite ran. They now
 * listen with the process's throwaway secret: a client without it gets
 * `MPM_ERR_AUTH` and runs nothing, while the suite's own clients (whose
 * environment names the secret) still build.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { localSecret } from '../../lib/agent/local-secret.js';
import { startAgents, stopAgents } from '../../benchmarks/common.js';
import { TestClient } from '../agent/client.js';
import { startCluster } from '../helpers/cluster.js';
import { cleanEnv, runMpmake } from '../helpers/run.js';

t.test('a test cluster refuses a client without the secret; the suite gets in', async (t) => {
  const cluster = await startCluster(t, 1, 1);
  const dir = t.testdir({ Makefile: 'all:\n\t@echo "$$MPMAKE_NODE" > node.txt\n' });
  const marker = join(dir, 'marker');
  const intruder = await TestClient.connect(t, cluster.agents[0]!.port);
  void intruder.authenticate(null).catch(() => undefined);
  intruder.submit({ argv: ['/bin/sh', '-c', `id > ${marker}`], cwd: dir });
  t.match(await intruder.waitFor((m) => m.type === 'error'), { code: 'MPM_ERR_AUTH' });
  await intruder.closed;
  t.notOk(
    intruder.messages.some((m) => m.type === 'welcome'),
    'no welcome',
  );
  t.notOk(existsSync(marker), 'nothing ran');

  const r = await runMpmake([`--mp-hosts=${cluster.hosts}`, '--mp-local='], {
    cwd: dir,
    env: cleanEnv(),
  });
  t.equal(r.code, 0, r.stderr.toString());
  t.equal(readFileSync(join(dir, 'node.txt'), 'utf8'), 'test-agent-0\n', 'built on the node');
});

t.test('benchmark agents listen with the secret too', async (t) => {
  const agents = await startAgents(1, 1, 'f14-bench');
  t.teardown(() => stopAgents(agents));
  t.equal(agents[0]!.secretFile, localSecret().path);
  const intruder = await TestClient.connect(t, agents[0]!.port);
  void intruder.authenticate(null).catch(() => undefined);
  t.match(await intruder.waitFor((m) => m.type === 'error'), { code: 'MPM_ERR_AUTH' });
  const mode = statSync(localSecret().path).mode & 0o777;
  t.equal(mode, 0o600, 'the secret file is private');
});
