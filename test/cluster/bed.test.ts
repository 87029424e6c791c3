// The cluster test bed's cases (issue 11), all on ONE bed: a file server,
// a client and three nodes in network namespaces, the tree on sshfs with
// NFS-like caches (test/helpers/cluster-bed.ts). A bed takes a while to
// build on a loaded 2-core machine, so every bed case runs here, on the one
// bed this file starts, one case after another.
//
// Adding a case: a module test/cluster/bed-<topic>.ts exporting a
// `BedCases` function (see bed-compare.ts) that registers its subtests on
// the `t` it is given, and one line in CASES below. A case:
//  - builds in directories of new names (placeTree, referenceBuild): no
//    host has anything of them cached, and no other case's files are there;
//  - asks for the agents it needs with `await bed.useAgents(perNode)` at the
//    start of each subtest (agents already running so are kept);
//  - leaves the bed as it found it: links up (restoreLink); a case that needs
//    other caches mounts the export again beside the bed's (bed.mountAlso).
// One case alone: `npx tap --grep='<case name>' dist/test/cluster/bed.test.js`.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { bedMissing, startBed } from '../helpers/cluster-bed.js';
import type { BedCases } from './bed-compare.js';
import { buildCases } from './bed-build.js';
import { fenceCases } from './bed-fence.js';
import { incrementalCases } from './bed-incremental.js';
import { mungeCases } from './bed-munge.js';

const CASES: [string, BedCases][] = [
  ['incremental builds', incrementalCases],
  ['builds', buildCases],
  ['MUNGE', mungeCases],
  // Last: the fenced node's mount is made again, its other mounts are not.
  ['fencing', fenceCases],
];

const missing = bedMissing();
if (missing) {
  t.plan(0, missing);
} else {
  // Cloned machines: every node has the same host name (the incremental
  // case checks that the nodes still get three ids).
  const bed = await startBed(t, { sameHostname: true });
  for (const [name, cases] of CASES) {
    await t.test(name, (t) => cases(t, bed));
  }

  t.test('the sshfs mounts live only in the hosts', async (t) => {
    t.notMatch(readFileSync('/proc/self/mountinfo', 'utf8'), bed.mountPath, 'none in ours');
  });
}
