// A real parallel C build: bare -j on the bundled tree (the demo's), with
// mpmake's default local list, as a user would run it. Output order under
// -j is not fixed, so lines are compared as sets; every file (objects,
// program, its checksum) byte for byte.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { startCluster } from '../helpers/cluster.js';
import { checkFidelity } from '../helpers/fidelity.js';
import { fixtureTree } from '../helpers/paths.js';

const cluster = await startCluster(t, 2, 2);

t.test('ctree-small', async (t) => {
  await t.test('bare-j', async (t) => {
    const { plain, mp, workDir } = await checkFidelity(t, cluster, fixtureTree('ctree-small'), {
      args: ['-j'],
      compare: 'sorted-lines',
      mpArgs: [],
      timeoutMs: 180_000,
    });
    const line = /^ctree: 24 units, checksum [0-9a-f]{16}$/m;
    t.match(plain.stdout.toString(), line, 'plain make built and ran the program');
    t.match(mp.stdout.toString(), line, 'mpmake built and ran the program');
    t.match(readFileSync(join(workDir, 'checksum.txt'), 'utf8'), line, 'checksum.txt written');
  });
});
