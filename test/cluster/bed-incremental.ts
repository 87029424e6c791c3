// Incremental builds on the cluster test bed (issue 11), where the measured
// bug lived: an object recompiled on a node, and make on the client, still
// seeing the object's old mtime in its attribute cache, did not relink.
// Each round edits a source (or a header every unit includes) through the
// client's mount, builds with mpmake -j9, and must leave the same files as
// plain make on a local copy given the same edits (a skipped relink shows
// there), with `make -q` satisfied on the file server's own directory each
// round and on the client once its caches have expired. Then a header
// generated on one node and included on others, regenerated within the
// cache time, and every target of grouped and multi-target pattern rules.
// Cases of the shared bed (run by bed.test.ts).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { Bed } from '../helpers/cluster-bed.js';
import { cleanEnv, describeEnd, runMake } from '../helpers/run.js';
import { snapshotTree } from '../helpers/tree.js';
import { bedTree, plainMake, writeFiles } from './bed-compare.js';

const ROUNDS = 20;
/** Past the bed's 3 s attribute and lookup caches. */
const CACHE_EXPIRY_MS = 3500;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/**
 * Into the next second of the clock (all hosts share this machine's): sftp
 * carries whole-second mtimes, so an edit must fall in a later second than
 * every file the last build wrote to look newer than them.
 */
const nextSecond = (): Promise<void> => sleep(1050 - (Date.now() % 1000));

/** Round i's edit: a unit's seed, or (every fifth round) config.h, which every unit includes. */
function edit(round: number): { file: string; sed: string } {
  const hex = (0x1000 + round * 7919).toString(16);
  if (round % 5 === 4) {
    return { file: 'config.h', sed: `s/^#define CT_SEED .*/#define CT_SEED 0x${hex}UL/` };
  }
  const unit = `u${String((round * 7) % 24).padStart(3, '0')}`;
  return { file: `${unit}.c`, sed: `s/^#define UNIT_SEED .*/#define UNIT_SEED 0x${hex}UL/` };
}

const GEN_MAKEFILE = `all: prog
gen.h: gen.sh
\tsh gen.sh > gen.h.tmp && mv gen.h.tmp gen.h
%.o: %.c gen.h
\t$(CC) -O2 -c -o $@ $<
prog: a.o b.o c.o d.o main.o
\t$(CC) -o $@ $^
\t./prog > out.txt
`;
const genSh = (n: number): string =>
  `echo '#define GEN ${n}UL'\necho '#define PAD "${'x'.repeat(n * 37)}"'\n`;
const unitC = (name: string): string =>
  `#include "gen.h"\nunsigned long ${name}(void) { return GEN * sizeof(PAD); }\n`;
const GEN_FILES = new Map<string, string>([
  ['Makefile', GEN_MAKEFILE],
  ['gen.sh', genSh(1)],
  ...['a', 'b', 'c', 'd'].map((u) => [`${u}.c`, unitC(u)] as [string, string]),
  [
    'main.c',
    '#include <stdio.h>\n#include "gen.h"\nunsigned long a(void), b(void), c(void), d(void);\n' +
      'int main(void) { printf("%lu\\n", a() + b() + c() + d() + GEN); return 0; }\n',
  ],
]);

// Grouped (a.h b.h &:) and multi-target pattern (%.x %.y:) rules, each
// with its second target consumed by a later rule. The makefile reads the
// second targets' attributes as it is parsed ($(shell ls -l ...)), so the
// client's cache holds their old mtimes while the recipe runs on a node.
const GROUPED_MAKEFILE = `SEEN := $(shell ls -l b.h p.y 2>/dev/null)
all: a.h out.txt p.x out2.txt
a.h b.h &: gen.sh
\tsh gen.sh
out.txt: b.h
\tcat b.h > $@
%.x %.y: %.in
\tsed s/^/x/ $< > $*.x && sed s/^/y/ $< > $*.y
out2.txt: p.y
\tcat p.y > $@
`;
const groupedGen = (n: number): string => `echo 'A ${n}' > a.h\necho 'B ${n}' > b.h\n`;

/**
 * Incremental rounds, a regenerated header, grouped and multi-target rules,
 * on one agent per node. The bed's nodes must share one host name (cloned
 * machines: the measured summary read `vm:7543 26, vm:7543 26, vm:7543 26`).
 */
export async function incrementalCases(t: Test, bed: Bed): Promise<void> {
  t.test(`${ROUNDS} incremental rounds end as local builds, make -q satisfied`, async (t) => {
    await bed.useAgents();
    const name = 'incremental';
    const tree = bedTree();
    writeFiles(join(bed.exportDir, name), tree);
    const bedDir = join(bed.mountPath, name);
    // The local reference, at the same path as the bed's in this namespace.
    const refDir = join(bed.mountPath, `${name}-ref`);
    writeFiles(refDir, tree);
    const report = join(bed.runDir, `${name}.report.json`);
    const clean = await bed.mpmake(['-j9', '--mp-quiet', `--mp-report=${report}`], {
      cwd: bedDir,
    });
    t.equal(describeEnd(clean), 'exit 0', `the clean build; stderr: ${clean.stderr}`);
    const ids = (JSON.parse(readFileSync(report, 'utf8')) as { nodes: { id: string }[] }).nodes.map(
      (n) => n.id,
    );
    t.equal(new Set(ids).size, 3, `three nodes with one host name, three ids: ${ids.join(', ')}`);
    t.equal(describeEnd(await plainMake(refDir, ['-j9'])), 'exit 0', 'the local clean build');
    let lagged = 0;
    /** Where a round's time goes (comments, for the suite's budget; nothing asserted). */
    const times: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // The last round ended past the caches; the first starts past them too
      // and in another second than the clean build (sftp mtimes are whole seconds).
      if (round === 0) await sleep(CACHE_EXPIRY_MS);
      const { file, sed } = edit(round);
      await bed.client.run('sed', ['-i', sed, file], { cwd: bedDir });
      execFileSync('sed', ['-i', sed, file], { cwd: refDir });
      // The local reference builds meanwhile: it shares nothing with the bed.
      const took = <T>(p: Promise<T>): Promise<[T, number]> => {
        const t0 = Date.now();
        return p.then((v) => [v, Date.now() - t0]);
      };
      const [[mp, mpMs], [plain, plainMs]] = await Promise.all([
        took(bed.mpmake(['-j9', '--mp-quiet', `--mp-report=${report}`], { cwd: bedDir })),
        took(plainMake(refDir, ['-j9'])),
      ]);
      const what = `round ${round} (${file})`;
      if (describeEnd(mp) !== 'exit 0' || describeEnd(plain) !== 'exit 0') {
        t.fail(`${what}: mpmake ${describeEnd(mp)}, make ${describeEnd(plain)}: ${mp.stderr}`);
        break;
      }
      const checksFrom = Date.now();
      const { fs, wallMs } = JSON.parse(readFileSync(report, 'utf8')) as {
        fs?: { targets: { retries: number } };
        wallMs: number;
      };
      if ((fs?.targets.retries ?? 0) > 0) lagged++;
      const same =
        JSON.stringify(snapshotTree(join(bed.exportDir, name))) ===
        JSON.stringify(snapshotTree(refDir));
      t.ok(same, `${what}: the same files as the local build`);
      // The file server's directory has no cache: its make -q judges the
      // tree as written, at once; the client's view is checked after the
      // rounds, once its caches have expired.
      const q = await runMake(['-q'], { cwd: join(bed.exportDir, name), env: cleanEnv() });
      t.equal(describeEnd(q), 'exit 0', `${what}: make -q on the server's tree is satisfied`);
      if (!same || describeEnd(q) !== 'exit 0') break;
      times.push(`${file} ${mpMs}/${wallMs}/${plainMs}/${Date.now() - checksFrom}`);
      await nextSecond();
    }
    t.comment(`ms per round (mpmake process/its wallMs/plain make/checks): ${times.join(', ')}`);
    await sleep(CACHE_EXPIRY_MS);
    const q = await bed.client.run('make', ['-q'], { cwd: bedDir });
    t.equal(describeEnd(q), 'exit 0', 'make -q on the client is satisfied once its caches expire');
    t.comment(`rounds where the client waited for a target to look as written: ${lagged}`);
  });

  t.test('a header generated on one node, included on the others', async (t) => {
    await bed.useAgents();
    const name = 'generated';
    writeFiles(join(bed.exportDir, name), GEN_FILES);
    const bedDir = join(bed.mountPath, name);
    const refDir = join(bed.mountPath, `${name}-ref`);
    writeFiles(refDir, GEN_FILES);
    // Regenerated at once (within every host's cache time), three times.
    for (let round = 1; round <= 3; round++) {
      if (round > 1) {
        await nextSecond();
        await bed.client.run('sh', ['-c', `printf '%s' "$1" > gen.sh`, 'sh', genSh(round)], {
          cwd: bedDir,
        });
        writeFiles(refDir, new Map([['gen.sh', genSh(round)]]));
      }
      const mp = await bed.mpmake(['-j9', '--mp-quiet', '--mp-local='], { cwd: bedDir });
      const plain = await runMake(['-j9'], { cwd: refDir, env: cleanEnv() });
      t.equal(describeEnd(mp), describeEnd(plain), `round ${round}: ended as make; ${mp.stderr}`);
      t.same(
        snapshotTree(join(bed.exportDir, name)),
        snapshotTree(refDir),
        `round ${round}: the same files (gen.h, objects, prog, out.txt) as the local build`,
      );
    }
  });

  t.test('every target of a grouped or multi-target pattern rule (issue 11)', async (t) => {
    await bed.useAgents();
    const name = 'grouped';
    const files = (n: number): Map<string, string> =>
      new Map([
        ['Makefile', GROUPED_MAKEFILE],
        ['gen.sh', groupedGen(n)],
        ['p.in', `input ${n}\n`],
      ]);
    writeFiles(join(bed.exportDir, name), files(1));
    const bedDir = join(bed.mountPath, name);
    const refDir = join(bed.mountPath, `${name}-ref`);
    writeFiles(refDir, files(1));
    // Round 1 builds; round 2 edits both inputs and builds at once (one such round failed before).
    for (let round = 1; round <= 2; round++) {
      if (round > 1) {
        await nextSecond();
        const edit = `printf '%s' "$1" > gen.sh && printf '%s' "$2" > p.in`;
        const next = files(round);
        await bed.client.run('sh', ['-c', edit, 'sh', next.get('gen.sh')!, next.get('p.in')!], {
          cwd: bedDir,
        });
        writeFiles(refDir, new Map([...next].filter(([f]) => f !== 'Makefile')));
      }
      const mp = await bed.mpmake(['-j9', '--mp-quiet', '--mp-local=', '--mp-no-learn'], {
        cwd: bedDir,
      });
      const plain = await runMake(['-j9'], { cwd: refDir, env: cleanEnv() });
      t.equal(describeEnd(mp), describeEnd(plain), `round ${round}: ended as make; ${mp.stderr}`);
      t.same(
        snapshotTree(join(bed.exportDir, name)),
        snapshotTree(refDir),
        `round ${round}: the same files (out.txt from b.h, out2.txt from p.y) as the local build`,
      );
    }
  });
}
