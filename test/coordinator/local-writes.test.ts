// Files written by a line that ran on the client count as writes of this
// build (issue 11): a line on the --mp-local list (the shim runs it by
// itself, after telling the coordinator its targets: WROTE), here `touch -d`
// stamping a time long past, so the "touched recently" rule cannot find
// them. A job on a node that reads them must revalidate them first: the
// report counts the jobs whose inputs were checked.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { BuildReport } from '../../lib/coordinator/build-report.js';
import { startCluster } from '../helpers/cluster.js';
import { cleanEnv, describeEnd, runMake, runMpmake } from '../helpers/run.js';
import { snapshotTree } from '../helpers/tree.js';

// stamp.txt by a plain rule, a.txt and b.txt by a grouped one (b.txt is
// not $@): each consumed by a job on the node.
const MAKEFILE = `all: out.txt out2.txt
stamp.txt:
\ttouch -d @1000000000 stamp.txt
a.txt b.txt &:
\ttouch -d @1000000000 a.txt b.txt
out.txt: stamp.txt
\tls stamp.txt > out.txt
out2.txt: a.txt b.txt
\tls b.txt > out2.txt
`;

const sortedLines = (b: Buffer): string[] => b.toString().split('\n').sort();

t.test('local-list writes are known to the nodes that read them', async (t) => {
  const cluster = await startCluster(t, 1, 2);
  const base = t.testdir();
  const dirs = { plain: join(base, 'plain'), mp: join(base, 'mp') };
  for (const d of Object.values(dirs)) {
    mkdirSync(d);
    writeFileSync(join(d, 'Makefile'), MAKEFILE);
  }
  const plain = await runMake(['-j2'], { cwd: dirs.plain, env: cleanEnv() });
  const report = join(base, 'report.json');
  const mp = await runMpmake(
    [
      `--mp-hosts=${cluster.hosts}`,
      '--mp-quiet',
      '--mp-no-learn',
      '--mp-local=touch',
      `--mp-report=${report}`,
      '-j2',
    ],
    { cwd: dirs.mp, env: cleanEnv() },
  );
  t.equal(describeEnd(mp), describeEnd(plain), `ended as make; ${mp.stderr.toString()}`);
  // Two producers run at once under -j2: their consumers start in the order
  // the producers end, under plain make as under mpmake, so the lines are
  // compared as a set (this failed once in CI on order alone).
  t.same(sortedLines(mp.stdout), sortedLines(plain.stdout), "make's output lines");
  t.same(snapshotTree(dirs.mp), snapshotTree(dirs.plain), 'the same files');
  const r = JSON.parse(readFileSync(report, 'utf8')) as BuildReport;
  t.equal(r.jobs.remote, 2, 'the two consumers ran on the node');
  t.equal(
    r.fs?.inputs.jobs,
    2,
    'both revalidated inputs the client wrote (stamp.txt; b.txt, a grouped second target)',
  );
});
