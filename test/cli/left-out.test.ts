// An agent that is gone before the build starts is left out with one line
// saying so, and the build succeeds on the others with make's results.
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { socketProblem } from '../../lib/client/connect-problem.js';
import { startCluster } from '../helpers/cluster.js';
import { readReport } from '../helpers/fidelity.js';
import { fixtureTree } from '../helpers/paths.js';
import { cleanEnv, runMake, runMpmake } from '../helpers/run.js';
import { resetTree, snapshotTree } from '../helpers/tree.js';

t.test('a dead agent is left out; the build goes on', async (t) => {
  const cluster = await startCluster(t, 2, 2);
  const dead = cluster.agents[1]!;
  await dead.stop('SIGKILL');
  const deadAddress = `${dead.host}:${dead.port}`;

  const base = t.testdir();
  const work = join(base, 'work');
  const source = fixtureTree('mixed-small');
  const reportFile = join(base, 'report.json');
  const opts = { cwd: work, env: cleanEnv() };

  resetTree(source, work);
  const plain = await runMake([], opts);
  t.equal(plain.code, 0, 'plain make builds the tree');
  const plainTree = snapshotTree(work);

  resetTree(source, work);
  const mp = await runMpmake(
    ['--mp-quiet', '--mp-local=', `--mp-hosts=${cluster.hosts}`, `--mp-report=${reportFile}`],
    opts,
  );
  t.equal(mp.code, 0, 'mpmake builds the tree');
  // The order of the lines is fidelity/serial-order's business; here: the same lines.
  const sorted = (b: Buffer): string[] => b.toString().split('\n').sort();
  t.same(sorted(mp.stdout), sorted(plain.stdout), 'same stdout lines');
  const lines = mp.stderr.toString().split('\n');
  const leaving = lines.filter((l) => l.startsWith(`mpmake: leaving out ${deadAddress}: `));
  t.equal(leaving.length, 1, `one "leaving out ${deadAddress}" line: ${JSON.stringify(lines)}`);
  t.equal(
    lines.filter((l) => !l.startsWith('mpmake: leaving out ')).join('\n'),
    plain.stderr.toString(),
    "otherwise make's stderr",
  );
  t.same(snapshotTree(work), plainTree, 'same files, bytes and modes');

  const report = readReport(reportFile);
  t.ok(report.jobs.remote > 0, `jobs ran remotely: ${JSON.stringify(report.jobs)}`);
  t.same(
    report.leftOut.map((l) => l.address),
    [deadAddress],
    'the report names the agent left out',
  );
  t.same(
    report.nodes.filter((n) => n.jobs > 0).map((n) => n.address),
    [`${cluster.agents[0]!.host}:${cluster.agents[0]!.port}`],
    'the build used the live agent',
  );
});

// The reasons read as words, not as Node's `read ECONNRESET` or an errno
// in parentheses (`host unreachable (EHOSTUNREACH)`).
t.test('an address that resets the connection is left out, said in words', async (t) => {
  const server = createServer((c) => c.resetAndDestroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const dir = t.testdir({ Makefile: 'all:\n\t@echo built\n' });
  const r = await runMpmake([`--mp-hosts=${address}`, '--mp-connect-timeout=2000'], {
    cwd: dir,
    env: cleanEnv(),
  });
  t.equal(r.code, 0, 'built locally');
  t.match(
    r.stderr.toString(),
    `mpmake: leaving out ${address}: connection reset during the handshake\n`,
  );
});

t.test('socket errors in words', async (t) => {
  const err = (code: string, errno: number, syscall = 'connect'): Error =>
    Object.assign(new Error(`${syscall} ${code} 198.18.0.9:7543`), { code, errno, syscall });
  t.equal(
    socketProblem(err('EHOSTUNREACH', -113), false),
    'host unreachable: no route to it from this machine; check the address in the host list and the network',
  );
  t.equal(
    socketProblem(err('ECONNRESET', -104, 'read'), true),
    'connection reset: the agent or its machine went away',
  );
  t.equal(socketProblem(err('EIO', -5, 'read'), true), 'connection failed: i/o error');
});
