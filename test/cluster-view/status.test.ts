// `mpm status` against real agents on loopback: who is up (with what), who
// is down and why, the exit status, and the clients of a running build.
import { chmodSync, realpathSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { packageVersion } from '../../lib/agent/package-root.js';
import type { NodeStatus } from '../../lib/cluster-view/node-status.js';
import { startCluster } from '../helpers/cluster.js';
import { cleanEnv, runMpmake, type RunResult } from '../helpers/run.js';
import { deadPort, runMpm } from './mpm.js';

const parse = (r: RunResult): NodeStatus[] => JSON.parse(r.stdout.toString()) as NodeStatus[];

t.test('two agents up, one address with nothing listening', async (t) => {
  const cluster = await startCluster(t, 2, 2);
  const dead = `127.0.0.1:${await deadPort()}`;
  const cwd = t.testdir();
  const hosts = `${cluster.hosts} ${dead}`;

  const r = await runMpm(['status', '--json', '--hosts', hosts], { cwd });
  t.equal(r.code, 0, `exit 0; stderr: ${r.stderr}`);
  const nodes = parse(r);
  t.equal(nodes.length, 3, 'one entry per host, in list order');
  cluster.agents.forEach((agent, i) => {
    t.match(nodes[i], {
      address: `127.0.0.1:${agent.port}`,
      nodeId: agent.id,
      state: 'up',
      reason: null,
      slots: 2,
      running: 0,
      queued: 0,
      agentVersion: packageVersion(),
      clients: [],
      jobs: [],
    });
    t.type(nodes[i]!.cpus, 'number');
    t.type(nodes[i]!.loadavg1, 'number');
    t.type(nodes[i]!.freeMemBytes, 'number');
    t.type(nodes[i]!.clockSkewMs, 'number');
  });
  t.match(nodes[2], { address: dead, state: 'down', nodeId: null, slots: null });
  t.match(nodes[2]!.reason, /connection refused/);

  const table = await runMpm(['status'], { cwd, env: cleanEnv({ MPMAKE_HOSTS: hosts }) });
  t.equal(table.code, 0, 'hosts from MPMAKE_HOSTS');
  const lines = table.stdout.toString().split('\n');
  t.match(lines[0], /^NODE +ADDRESS +STATE +SLOTS/);
  for (const agent of cluster.agents) {
    t.ok(
      lines.some((l) => l.startsWith(agent.id) && /\bup\b/.test(l)),
      `a row says ${agent.id} is up`,
    );
  }
  t.ok(
    lines.some((l) => l.includes(dead) && /\bdown\b/.test(l) && /connection refused/.test(l)),
    'a row says the dead address is down, and why',
  );
  t.match(table.stdout.toString(), /2 of 3 nodes up: 4 slots/);
});

t.test('no node up: exit 1; bad usage: exit 2', async (t) => {
  const cwd = t.testdir();
  const dead = `127.0.0.1:${await deadPort()}`;
  const down = await runMpm(['status', '--json', '--hosts', dead], { cwd });
  t.equal(down.code, 1);
  t.match(parse(down), [{ state: 'down' }]);

  const none = await runMpm(['status'], { cwd });
  t.equal(none.code, 2, 'no hosts configured');
  t.match(none.stderr.toString(), /no agents configured/);

  const bad = await runMpm(['status', '--hosts', 'nodeA:notaport'], { cwd });
  t.equal(bad.code, 2, 'a host list that does not parse');
  t.match(bad.stderr.toString(), /cannot read host entry/);
});

t.test('a wrong secret is refused, and says so', async (t) => {
  const dir = t.testdir({
    good: 'the-secret-of-this-test\n',
    bad: 'not-the-secret-of-this-test\n',
  });
  chmodSync(join(dir, 'good'), 0o600);
  chmodSync(join(dir, 'bad'), 0o600);
  const { spawnLocalAgent } = await import('../../lib/agent/spawn-agent.js');
  const agent = await spawnLocalAgent({ slots: 1, secretFile: join(dir, 'good'), env: cleanEnv() });
  t.teardown(() => agent.stop());
  const hosts = `127.0.0.1:${agent.port}`;

  const wrong = await runMpm(
    ['status', '--json', '--hosts', hosts, '--secret-file', join(dir, 'bad')],
    { cwd: dir },
  );
  t.equal(wrong.code, 1);
  t.match(parse(wrong), [{ state: 'refused', reason: /auth failed/ }]);

  const missing = await runMpm(['status', '--json', '--hosts', hosts], {
    cwd: dir,
    env: cleanEnv({ MPMAKE_SECRET_FILE: '' }),
  });
  t.match(parse(missing), [{ state: 'refused', reason: /requires the shared secret/ }]);

  const right = await runMpm(['status', '--json', '--hosts', hosts], {
    cwd: dir,
    env: cleanEnv({ MPMAKE_SECRET_FILE: join(dir, 'good') }),
  });
  t.equal(right.code, 0, 'the secret from MPMAKE_SECRET_FILE');
  t.match(parse(right), [{ state: 'up', slots: 1 }]);
});

t.test('clients connected and their jobs, while a build runs', async (t) => {
  const cluster = await startCluster(t, 2, 1);
  const dir = t.testdir({
    // Each recipe waits for the test to say `go`, so the build is surely running when asked.
    Makefile:
      'all: a b c\n' + 'a b c:\n' + '\t@while [ ! -e go ]; do sleep 0.05; done; echo $@ > $@.out\n',
  });
  t.teardown(() => writeFileSync(join(dir, 'go'), ''));
  let buildPid = -1;
  const build = runMpmake(['-j', '--mp-quiet'], {
    cwd: dir,
    env: cleanEnv({ MPMAKE_HOSTS: cluster.hosts }),
    timeoutMs: 90_000,
    onSpawn: (child) => (buildPid = child.pid ?? -1),
  });

  let nodes: NodeStatus[] = [];
  const running = (): number =>
    nodes.reduce((a, n) => a + (n.clients ?? []).reduce((b, c) => b + c.running, 0), 0);
  let seen = false;
  for (const deadline = Date.now() + 30_000; !seen && Date.now() < deadline;) {
    const r = await runMpm(['status', '--json', '--hosts', cluster.hosts], { cwd: dir });
    nodes = parse(r);
    seen = running() >= 2;
    if (!seen) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  t.ok(seen, 'both slots of the cluster run the build');

  for (const node of nodes) {
    t.equal(node.clients?.length, 1, `${node.nodeId}: one client, the build (not us)`);
    const client = node.clients![0]!;
    t.match(client, { user: userInfo().username, pid: buildPid, running: 1, queued: 0 });
    t.equal(node.jobs?.length, 1, `${node.nodeId}: its running job is listed`);
    t.match(node.jobs![0], {
      build: client.build,
      command: /while \[ ! -e go \]/,
      cwd: realpathSync(dir),
      startedAtMs: Number,
    });
  }
  t.equal(nodes[0]!.clients![0]!.build, nodes[1]!.clients![0]!.build, 'the same build on both');

  const table = await runMpm(['status', '--hosts', cluster.hosts], { cwd: dir });
  t.match(table.stdout.toString(), new RegExp(`clients:\\n .*@.* pid ${buildPid} build `));

  writeFileSync(join(dir, 'go'), '');
  const result = await build;
  t.equal(result.code, 0, `the build ends well; stderr: ${result.stderr}`);
});
