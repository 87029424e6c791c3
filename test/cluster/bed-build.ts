// Builds on the cluster test bed (issue 11): a file server, a client and
// three nodes in network namespaces, the tree on sshfs with NFS-like caches.
// Each build must end as plain make's on the same sources: exit status,
// output, every file. Cases of the shared bed (run by bed.test.ts); each
// subtest builds in a directory of its own (new names: nothing cached
// anywhere) on the agents it asks for.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { BuildReport as FullReport } from '../../lib/coordinator/build-report.js';
import {
  CLIENT_ADDRESS,
  faketimeLibrary,
  type AgentOptions,
  type Bed,
  type Host,
} from '../helpers/cluster-bed.js';
import type { TreeFiles } from '../../fixtures/gen-tree.js';
import { runCutLink } from '../helpers/cut-link.js';
import { cleanEnv, runMake } from '../helpers/run.js';
import {
  bedTree,
  placeTree,
  readBedReport,
  referenceBuild,
  reportPath,
  sameAsPlain,
  writeFiles,
} from './bed-compare.js';

/** gen.h (made from version.txt) included by main.c and c0..c8; each job logs its node. */
function generatedHeaderTree(): TreeFiles {
  const consumers = Array.from({ length: 9 }, (_, i) => `c${i}`);
  const files: TreeFiles = new Map();
  files.set('version.txt', 'one\n');
  for (const c of consumers) {
    files.set(`${c}.c`, `#include "gen.h"\nconst char *v_${c}(void) { return VERSION "/${c}"; }\n`);
  }
  files.set(
    'main.c',
    `#include <stdio.h>\n#include "gen.h"\n` +
      consumers.map((c) => `const char *v_${c}(void);\n`).join('') +
      `int main(void) {\n  puts(VERSION);\n` +
      consumers.map((c) => `  puts(v_${c}());\n`).join('') +
      `  return 0;\n}\n`,
  );
  // Outside the tree, so the files compared are make's alone.
  const log = (what: string): string => `echo "${what} \$\${MPMAKE_NODE:-local}" >> "$$BED_LOG"`;
  files.set(
    'Makefile',
    `CFLAGS = -O2\nOBJS = main.o ${consumers.map((c) => `${c}.o`).join(' ')}\n\n` +
      `all: out.txt\n\n` +
      `gen.h: version.txt\n\tsed 's/.*/#define VERSION "&"/' version.txt > gen.h && ${log('gen.h')}\n\n` +
      `%.o: %.c gen.h\n\t$(CC) $(CFLAGS) -c -o $@ $< && ${log('$@')}\n\n` +
      `prog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n\n` +
      `out.txt: prog\n\t./prog > $@\n\tcat $@\n`,
  );
  return files;
}

/** Clean builds of the bed tree and a generated header; TLS; nodes left out by start checks. */
export async function buildCases(t: Test, bed: Bed): Promise<void> {
  const tree = bedTree();
  const reference = await referenceBuild(bed, 'plain', tree, ['-j9']);
  const leavingOut = /^mpmake: leaving out /;
  const host = (address: string): string => address.split(':')[0]!;

  /** Builds NAME with -j9 on agents with `perNode[i]` (those already so are kept). */
  const build = async (name: string, perNode: AgentOptions[], env: Record<string, string> = {}) => {
    const agents = await bed.useAgents(perNode);
    const dir = placeTree(bed, name, tree);
    const mp = await bed.mpmake(['-j9', '--mp-quiet', `--mp-report=${reportPath(bed, name)}`], {
      cwd: dir,
      env,
    });
    const report = readBedReport(bed, name);
    const jobsOn = report.nodes.filter((n) => n.jobs > 0).map((n) => host(n.address));
    const left = mp.stderr
      .toString()
      .split('\n')
      .filter((l) => leavingOut.test(l));
    return { mp, report, jobsOn, left, agents };
  };

  t.equal(reference.result.code, 0, 'plain make builds the tree');

  t.test('a clean -j9 build is the local build, jobs on all three nodes', async (t) => {
    const { mp, report, jobsOn } = await build('clean', []);
    sameAsPlain(t, bed, 'clean', mp, reference);
    t.same(report.leftOut, [], 'no node left out');
    t.equal(jobsOn.length, 3, `jobs ran on all three nodes: ${JSON.stringify(report.nodes)}`);
    t.equal(report.jobs.local, 0, 'no job ran on the client');
  });

  t.test('a header generated on one node is included by jobs on the others', async (t) => {
    const tree = generatedHeaderTree();
    const ref = join(bed.mountPath, 'gen-plain');
    writeFiles(ref, tree);
    const plain = await runMake(['-j9'], {
      cwd: ref,
      env: cleanEnv({ BED_LOG: join(bed.runDir, 'gen-plain.log') }),
    });
    t.equal(plain.code, 0, 'plain make builds it');
    const log = join(bed.runDir, 'gen.log');
    await bed.useAgents();
    const mp = await bed.mpmake(['-j9', '--mp-quiet', '--mp-local='], {
      cwd: placeTree(bed, 'gen', tree),
      env: { BED_LOG: log },
    });
    sameAsPlain(t, bed, 'gen', mp, { name: 'gen-plain', result: plain });
    const where = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' ') as [string, string]);
    const genNode = where.find(([what]) => what === 'gen.h')?.[1];
    const others = where.filter(([what, node]) => what !== 'gen.h' && node !== genNode);
    t.ok(
      genNode !== undefined && genNode !== 'local' && others.length > 0,
      `gen.h made on ${genNode}, included on other nodes too: ${JSON.stringify(where)}`,
    );
  });

  // Negative lookups cached (negative_timeout=3, FUSE's like NFS's
  // lookupcache=all) on a second view of the export: the client's make
  // misses gen.h (and every object) as it starts, and so does every node
  // just before; gen.h is then made on one node and included on others,
  // within the cache time. A miss that kept being served from the cache
  // would fail lines with MPM_ERR_FS_STALE (or a node would not find gen.h).
  t.test(
    'negative lookups cached: gen.h made on one node after every host missed it',
    async (t) => {
      await bed.useAgents();
      const negPath = join(bed.runDir, 'tree-neg');
      await bed.mountAlso(negPath, { negativeTimeout: 3 });
      const tree = generatedHeaderTree();
      const ref = join(bed.mountPath, 'neg-plain');
      writeFiles(ref, tree);
      const plain = await runMake(['-j9'], {
        cwd: ref,
        env: cleanEnv({ BED_LOG: join(bed.runDir, 'neg-plain.log') }),
      });
      writeFiles(join(bed.exportDir, 'neg'), tree);
      const dir = join(negPath, 'neg');
      const missed =
        'for f in gen.h main.o c0.o prog out.txt; do test -e $f && exit 1; done; exit 0';
      for (const node of bed.nodes) {
        const r = await node.run('sh', ['-c', missed], { cwd: dir });
        t.equal(r.code, 0, `${node.name} looked gen.h up and missed it`);
      }
      const mp = await bed.mpmake(
        ['-j9', '--mp-quiet', '--mp-local=', `--mp-report=${reportPath(bed, 'neg')}`],
        { cwd: dir, env: { BED_LOG: join(bed.runDir, 'neg.log') } },
      );
      sameAsPlain(t, bed, 'neg', mp, { name: 'neg-plain', result: plain });
      const fs = (JSON.parse(readFileSync(reportPath(bed, 'neg'), 'utf8')) as FullReport).fs;
      t.equal(fs?.targets.pastBound, 0, 'no target past the bound on the client');
      t.equal(fs?.inputs.pastBound, 0, 'no input past the bound on a node');
      t.comment(
        `lag: targets ${JSON.stringify(fs?.targets)}, inputs ${JSON.stringify(fs?.inputs)}`,
      );
    },
  );

  t.test('TLS across the namespaces', async (t) => {
    const tls = { tls: true };
    const { mp, report, jobsOn } = await build('tls', [tls, tls, tls], { MPMAKE_TLS: '1' });
    sameAsPlain(t, bed, 'tls', mp, reference);
    t.same(report.leftOut, [], 'no node left out');
    t.equal(jobsOn.length, 3, 'all three nodes ran jobs');
  });

  // One build, three start checks: node0 lets the client's address in,
  // node1 allows another address only, node2's clock is 30 s ahead.
  const noFaketime = faketimeLibrary() ? false : 'libfaketime is not installed';
  t.test('--allow and a skewed clock: nodes left out, each with its message', async (t) => {
    const [allowed, refused, skewed] = bed.nodes as [Host, Host, Host];
    const { mp, report, jobsOn, left, agents } = await build('checks', [
      { allow: [`${CLIENT_ADDRESS}/32`] },
      { allow: ['198.18.0.99'] },
      noFaketime ? { allow: ['198.18.0.99'] } : { clockOffset: '+30' },
    ]);
    sameAsPlain(t, bed, 'checks', mp, reference, [leavingOut]);
    t.same(jobsOn, [allowed.address], 'only the node that allows the client ran jobs');
    t.same(
      report.leftOut.map((l) => host(l.address)).sort(),
      [refused.address, skewed.address],
      'the report names both nodes left out',
    );
    t.equal(left.length, 2, `two "leaving out" lines: ${JSON.stringify(left)}`);
    t.ok(
      left.some((l) => l.startsWith(`mpmake: leaving out ${refused.address}:`)),
      'the node refusing the client is named',
    );
    t.match(
      agents[1]!.log(),
      `refused connection from ${CLIENT_ADDRESS}`,
      'its agent logged the refusal with the client address',
    );
    t.test('the skewed clock', { skip: noFaketime }, async (t) => {
      const line = left.find((l) => l.startsWith(`mpmake: leaving out ${skewed.address}:`));
      t.match(
        line ?? '',
        /its clock differs from ours by \d+ ms \(limit 1000\)/,
        "the start check's message",
      );
    });
  });

  // Issue 13 / 11: a link cut mid-build, restored after it; every target
  // written step by step with a log of each write on the shared tree.
  t.test('a node whose link is cut mid-build writes nothing after its jobs re-ran', async (t) => {
    const r = await runCutLink(bed, 'cut-link', { heartbeatTimeoutMs: 2000, at: 'quiet' });
    t.equal(r.code, 0, `the build succeeds\n${r.stderr}`);
    t.same(r.incomplete, [], 'every target as plain make leaves it');
    t.same(r.overlaps, [], 'no two copies of a job wrote at the same time');
    t.same(r.lateLines, [], 'no write of the cut node reached the server after its re-run began');
    t.same(r.leftovers, [], 'no probe or temp file left in the tree');
    t.equal(r.strays, 0, 'no job process left anywhere');
    t.ok(r.copies > 4, "the cut node's jobs ran again");
    const victim = r.victim.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    t.match(r.stderr, new RegExp(`lost ${victim} .*running it again`), 'and mpmake said so');
    t.equal(r.report.jobs.total, 4, 'four jobs, each counted once');
  });
}
