// An agent that is gone before the build starts is left out with one line
// saying so, and the build succeeds on the others with make's results.
import { join } from 'node:path';
import t from 'tap';
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
