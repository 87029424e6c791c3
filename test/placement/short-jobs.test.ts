// Issue 16, cmake-short MISSED: placement learnt from wall times, and on a
// loaded machine every helper line (cp, wc) ran longer than a round
// trip, so all went to nodes; on a quiet one (6 ms round trip) a node's
// ~10 ms launch of `sh -c cp` made them go out too. The rule now weighs a
// line's own cost on the client against a round trip plus the node's
// launch (learnt from trivial lines). Deterministic: the build starts
// from a history with fixed figures, as a quiet machine would have left.
import { availableParallelism } from 'node:os';
import { readdirSync, readFileSync, realpathSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import t, { type Test } from 'tap';
import type { BuildReport } from '../../lib/coordinator/build-report.js';
import { historyFile, type BuildHistory } from '../../lib/report/build-history.js';
import { startCluster } from '../helpers/cluster.js';
import { cleanEnv, runMpmake, scratchDir } from '../helpers/run.js';

const HELPERS = 6;
/** A C file whose compile takes far more CPU than a loopback round trip (~0.3 s). */
const BIG_C = Array.from(
  { length: 60 },
  (_, i) =>
    `int f${i}(int x) { int s = x; for (int k = 0; k < x; k++) s = s * ${i + 3} + (s >> 3) ^ k; return s; }`,
).join('\n');

const MAKEFILE = `STAMPS := $(foreach i,${Array.from({ length: HELPERS }, (_, i) => i + 1).join(' ')},h$(i).stamp)
all: c1.o c2.o $(STAMPS)
h%.stamp:
\tcp Makefile $@
\twc -l Makefile
c%.o: big.c
\tcc -O2 -c -o $@ big.c
`;

/**
 * What a quiet machine teaches: a 6 ms round trip; cp costs a node 10 ms
 * of CPU (its launch: cp is a trivial kind), wc 13 ms, a compile 300 ms.
 */
const HISTORY: BuildHistory = {
  version: 2,
  jobs: 2 * HELPERS + 2,
  wallMs: 1000,
  ok: true,
  times: {
    roundTripMs: 6,
    commands: {
      'cp Makefile': { n: 9, recentMs: [12, 12, 12], recentCpuMs: [10, 10, 10] },
      'wc -l Makefile': { n: 9, recentMs: [15, 15, 15], recentCpuMs: [13, 13, 13] },
      'cc -O2 -c': { n: 2, recentMs: [310, 310], recentCpuMs: [300, 300] },
    },
  },
};

t.test('the short-job rule, from a history', async (t) => {
  const cluster = await startCluster(t, 1, 2);
  /** Builds the tree from the fed history with `args`; its report. */
  const build = async (t: Test, args: string[]): Promise<BuildReport> => {
    const dir = t.testdir({ Makefile: MAKEFILE, 'big.c': `${BIG_C}\n` });
    const cache = scratchDir('mpmake-short-cache-');
    t.teardown(() => rmSync(cache, { recursive: true, force: true }));
    const env = cleanEnv({ XDG_CACHE_HOME: cache, MPMAKE_NO_LEARN: '0' });
    const file = historyFile(env, realpathSync(dir), []);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(HISTORY));
    const reportFile = join(cache, 'report.json');
    const r = await runMpmake(
      ['-j2', `--mp-hosts=${cluster.hosts}`, `--mp-report=${reportFile}`, ...args],
      { cwd: dir, env },
    );
    t.equal(r.code, 0, `built: ${r.stderr.toString()}`);
    const made = readdirSync(dir).filter((f) => /\.(o|stamp)$/.test(f));
    t.equal(made.length, HELPERS + 2, 'every target made');
    t.same(readdirSync(dirname(file)), [file.slice(dirname(file).length + 1)], 'the history read');
    const report = JSON.parse(readFileSync(reportFile, 'utf8')) as BuildReport;
    t.equal(report.jobs.total, 2 * HELPERS + 2, 'every line reached mpmake');
    return report;
  };

  t.test(
    'issue-16 short-job rule on a quiet machine: learnt figures from the history are applied',
    async (t) => {
      // Against the round trip alone every line would go out; with the
      // launch, cp (0 ms of its own) and wc (3 ms) cost less on the client
      // than 6 + 10 ms, and a compile (290 ms) does not.
      const report = await build(t, []);
      // Every helper is judged cheaper on the client; the bound on short lines
      // at once (the client's cores, unit-tested) may still send one out.
      const busy = report.jobs.shortBusy ?? 0;
      t.equal(
        (report.jobs.short ?? 0) + busy,
        2 * HELPERS,
        'every helper line cheaper on the client',
      );
      t.equal(report.jobs.remote - busy, 2, 'both compiles went to the node');
      if (availableParallelism() >= 2) {
        t.ok(busy <= 2, `at most two lines at once under -j2: ${busy} sent by the bound`);
      }
    },
  );

  // README: `--mp-local=` empty means no command stays local; the short
  // rule kept the helpers on the client all the same.
  t.test('--mp-local= (empty): no line stays on the client for being short', async (t) => {
    const report = await build(t, ['--mp-local=']);
    t.equal(report.jobs.short ?? 0, 0, 'none kept as short');
    t.equal(report.jobs.local, 0, 'none ran on the client');
    t.equal(report.jobs.remote, 2 * HELPERS + 2, 'every line went to the node');
  });
});
