// Issue 16, cmake-short MISSED: placement learnt from wall times, and on a
// loaded machine every helper line (cp, wc) ran longer than a round
// trip, so all went to nodes. Nodes now report each job's CPU time: helper
// lines learnt in one build stay on the client in the next, and real
// compiles still go to nodes. Two builds of one tree, one agent.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { BuildReport } from '../../lib/coordinator/build-report.js';
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

t.test(
  'issue-16 cmake-short MISSED: helpers learnt once stay local, compiles go to nodes',
  async (t) => {
    const cluster = await startCluster(t, 1, 2);
    const dir = t.testdir({ Makefile: MAKEFILE, 'big.c': `${BIG_C}\n` });
    const cache = scratchDir('mpmake-short-cache-');
    t.teardown(() => rmSync(cache, { recursive: true, force: true }));
    const env = cleanEnv({ XDG_CACHE_HOME: cache, MPMAKE_NO_LEARN: '0' });
    const reportFile = join(cache, 'report.json');
    const build = async (): Promise<BuildReport> => {
      for (const f of readdirSync(dir)) if (/\.(o|stamp)$/.test(f)) rmSync(join(dir, f));
      const r = await runMpmake(
        ['-j2', `--mp-hosts=${cluster.hosts}`, `--mp-report=${reportFile}`],
        {
          cwd: dir,
          env,
        },
      );
      t.equal(r.code, 0, `built: ${r.stderr.toString()}`);
      const made = readdirSync(dir).filter((f) => /\.(o|stamp)$/.test(f));
      t.equal(made.length, HELPERS + 2, 'every target made');
      return JSON.parse(readFileSync(reportFile, 'utf8')) as BuildReport;
    };
    const first = await build();
    t.equal(first.jobs.total, 2 * HELPERS + 2, 'every line reached mpmake');
    const [historyName] = readdirSync(join(cache, 'mpmake', 'history'));
    const history = JSON.parse(
      readFileSync(join(cache, 'mpmake', 'history', historyName!), 'utf8'),
    ) as {
      times: {
        roundTripMs: number;
        commands: Record<string, { recentCpuMs?: number[]; recentMs: number[] }>;
      };
    };
    const cpu = (key: string): number[] | undefined => history.times.commands[key]?.recentCpuMs;
    t.ok(cpu('cp Makefile') && cpu('cc -O2 -c'), 'the nodes told the CPU times of both kinds');
    t.comment(
      `learnt: round trip ${history.times.roundTripMs} ms; CPU ms cp ${cpu('cp Makefile')?.join(',')}, ` +
        `wc ${cpu('wc -l Makefile')?.join(',')}, cc ${cpu('cc -O2 -c')?.join(',')}; wall ms cp ` +
        `${history.times.commands['cp Makefile']?.recentMs.join(',')}`,
    );
    // What the rule decides follows what was learnt: on a loaded machine the
    // round trip (100+ ms) dwarfs a helper's CPU time; on a quiet one a
    // 6 ms round trip is below the ~10 ms of CPU a node spends launching
    // `sh -c cp` (its supervisor and shell count), and helpers go out.
    const median = (v: number[] = []): number =>
      [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] ?? Infinity;
    const helpersShort =
      median(cpu('cp Makefile')) < history.times.roundTripMs &&
      median(cpu('wc -l Makefile')) < history.times.roundTripMs;
    const second = await build();
    if (helpersShort) {
      t.equal(second.jobs.short, 2 * HELPERS, 'every helper line stayed on the client');
      t.equal(second.jobs.remote, 2, 'both compiles went to the node');
    } else {
      t.comment('learnt: helpers cost more CPU on the node than a round trip: they may go out');
      t.ok(second.jobs.remote >= 2, 'both compiles went to the node');
    }
  },
);
