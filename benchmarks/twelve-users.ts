/**
 * The MOSIX paper's Figure 3 (USENIX 2000): many users building on one
 * cluster at once. A users each start their own build at the same moment,
 * each in its own copy of a latency-bound tree (U × `sleep S` recipes), on
 * one cluster of A loopback agents × S slots. Three ways to run them:
 *
 *   mpmake      `mpmake -j` per user: lowest expected wait; agents queue
 *               beyond their slots and serve clients round-robin
 *   make        plain `make -jA·S` per user, everything on this machine
 *   first-free  `mpmake -j -k --mp-placement=first-free`: the first node with
 *               a free slot, else "cluster busy" (exit 127), standing for LSF
 *
 * For each number of users: average build time per user, the spread
 * (slowest / fastest user), jobs per node (from each user's --mp-report),
 * refused lines and failed builds. Then the single-user point: 64 × sleep
 * 0.5 at -j32 over 4 agents × 8 slots (ideal 1.0 s).
 *
 *   node dist/benchmarks/twelve-users.js [--users 1,2,4,6,8,12] [--units 32]
 *        [--sleep 0.5] [--agents 4] [--slots 4] [--runs 3]
 *        [--single-units 64] [--single-slots 8] [--single-runs 5]
 *   node dist/benchmarks/twelve-users.js --replot   (table and chart again from the JSON)
 *
 * Writes results/twelve-users.{json,md,svg,png}.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateTree } from '../fixtures/gen-tree.js';
import {
  fmt,
  hostList,
  isMain,
  launch,
  machine,
  markdownTable,
  median,
  mpmakeCli,
  numberOptions,
  readReport,
  renderPng,
  startAgents,
  stopAgents,
  takeFlag,
  takeListOption,
  verdict,
  writeResultFile,
  writeResults,
  resultsDir,
  type Finished,
  type Machine,
  type Report,
} from './common.js';
import { lineChart } from './svg-chart.js';

export interface TwelveUsersOptions {
  users: number[];
  units: number;
  sleep: number;
  agents: number;
  slots: number;
  runs: number;
  /** The single-user point: units, slots per agent (same agent count), runs; 0 runs skips it. */
  singleUnits: number;
  singleSlots: number;
  singleRuns: number;
}

export const TWELVE_USERS_TARGETS = {
  /** Slowest / fastest user at the largest user count, mpmake. */
  spread: 1.15,
  /** Refused lines and failed builds, mpmake. */
  refusals: 0,
  /** Per-user time against total work / total slots (growth and each point). */
  growthRatio: 1.15,
  /** The single-user point, seconds (ideal 1.0). */
  singleUserS: 1.15,
};

type System = 'mpmake' | 'make' | 'first-free';
const SYSTEMS: System[] = ['mpmake', 'make', 'first-free'];

interface UserRun {
  wallMs: number;
  code: number | null;
  refused: number;
  nodes: Record<string, number>;
}

interface GroupRun {
  users: UserRun[];
  avgMs: number;
  minMs: number;
  maxMs: number;
  spread: number;
  refused: number;
  failedUsers: number;
}

interface PointSummary {
  avgMs: number;
  spread: number;
  worstSpread: number;
  minMs: number;
  maxMs: number;
  /** Over all rounds. */
  refusedLines: number;
  failedUsers: number;
  /** Jobs per node id, summed over the users, mean over rounds. */
  jobsPerNode: Record<string, number>;
}

function summarise(runs: GroupRun[]): PointSummary {
  const jobsPerNode: Record<string, number> = {};
  for (const g of runs) {
    for (const u of g.users) {
      for (const [id, n] of Object.entries(u.nodes)) jobsPerNode[id] = (jobsPerNode[id] ?? 0) + n;
    }
  }
  for (const id of Object.keys(jobsPerNode)) jobsPerNode[id] = jobsPerNode[id]! / runs.length;
  return {
    avgMs: median(runs.map((g) => g.avgMs)),
    spread: median(runs.map((g) => g.spread)),
    worstSpread: Math.max(...runs.map((g) => g.spread)),
    minMs: median(runs.map((g) => g.minMs)),
    maxMs: median(runs.map((g) => g.maxMs)),
    refusedLines: runs.reduce((s, g) => s + g.refused, 0),
    failedUsers: runs.reduce((s, g) => s + g.failedUsers, 0),
    jobsPerNode,
  };
}

export async function runTwelveUsers(options: TwelveUsersOptions): Promise<unknown> {
  const { users, units, sleep, agents: nAgents, slots, runs } = options;
  const loadBefore = loadavg()[0]!;
  const totalSlots = nAgents * slots;
  const maxUsers = Math.max(...users);
  const base = mkdtempSync(join(tmpdir(), 'mpmake-bench-users-'));
  const dirs = Array.from({ length: maxUsers }, (_, i) => join(base, `user${i}`));
  for (const dir of dirs) generateTree('sleep', dir, { units, sleepSeconds: sleep });
  const reportOf = (i: number): string => join(base, `report${i}.json`);
  const idealMs = (n: number): number => (n * units * sleep * 1000) / totalSlots;

  let agents = await startAgents(nAgents, slots, 'bench-users');
  try {
    const hosts = hostList(agents);
    const argsFor = (system: System, i: number): [string, string[]] => {
      const mp = [mpmakeCli, '--mp-quiet', `--mp-hosts=${hosts}`, `--mp-report=${reportOf(i)}`];
      if (system === 'make') return ['make', [`-j${totalSlots}`]];
      if (system === 'mpmake') return [process.execPath, [...mp, '-j']];
      return [process.execPath, [...mp, '--mp-placement=first-free', '-k', '-j']];
    };
    const group = async (system: System, n: number): Promise<GroupRun> => {
      for (let i = 0; i < n; i++) {
        execFileSync('make', ['-s', 'clean'], { cwd: dirs[i]!, stdio: 'ignore' });
        rmSync(reportOf(i), { force: true });
      }
      // Every user's build starts now, as twelve people pressing Enter together.
      const launched = Array.from({ length: n }, (_, i) => {
        const [file, args] = argsFor(system, i);
        return launch(file, args, dirs[i]!);
      });
      const finished: Finished[] = await Promise.all(launched.map((l) => l.done));
      const userRuns = finished.map((f, i): UserRun => {
        const report: Report | undefined = system === 'make' ? undefined : readReport(reportOf(i));
        if (system === 'mpmake' && f.code !== 0) {
          process.stderr.write(`twelve-users: user ${i} failed (${f.code}): ${f.stderr.trim()}\n`);
        }
        return {
          wallMs: f.wallMs,
          code: f.code,
          refused: report?.jobs.refused ?? 0,
          nodes: Object.fromEntries((report?.nodes ?? []).map((nd) => [nd.id, nd.jobs])),
        };
      });
      const walls = userRuns.map((u) => u.wallMs);
      const minMs = Math.min(...walls);
      const maxMs = Math.max(...walls);
      return {
        users: userRuns,
        avgMs: walls.reduce((a, b) => a + b, 0) / walls.length,
        minMs,
        maxMs,
        spread: maxMs / minMs,
        refused: userRuns.reduce((s, u) => s + u.refused, 0),
        failedUsers: userRuns.filter((u) => u.code !== 0).length,
      };
    };

    // One untimed warm-up of each system, so caches and the agents' JIT are warm.
    for (const s of SYSTEMS) await group(s, 1);
    const samples: Record<string, Record<System, GroupRun[]>> = {};
    for (const n of users) samples[n] = { mpmake: [], make: [], 'first-free': [] };
    for (let round = 0; round < runs; round++) {
      for (const n of users) {
        for (const s of SYSTEMS) {
          const g = await group(s, n);
          samples[n]![s].push(g);
          process.stderr.write(
            `twelve-users: round ${round + 1}/${runs} ${n} user(s) ${s}: avg ${fmt(g.avgMs / 1000)} s ` +
              `(ideal ${fmt(idealMs(n) / 1000)}), spread ${fmt(g.spread)}, ` +
              `${g.refused} refused, ${g.failedUsers} failed\n`,
          );
        }
      }
    }
    const summary = Object.fromEntries(
      users.map((n) => [
        n,
        {
          idealMs: idealMs(n),
          ...(Object.fromEntries(SYSTEMS.map((s) => [s, summarise(samples[n]![s])])) as Record<
            System,
            PointSummary
          >),
        },
      ]),
    ) as Record<number, { idealMs: number } & Record<System, PointSummary>>;

    // The single-user point: a bigger cluster, one build, -j = all its slots.
    let single: { mpmakeMs: number; makeMs: number; idealMs: number; samples: unknown } | undefined;
    if (options.singleRuns > 0) {
      await stopAgents(agents);
      agents = await startAgents(nAgents, options.singleSlots, 'bench-single');
      const j = nAgents * options.singleSlots;
      const dir = join(base, 'single');
      generateTree('sleep', dir, { units: options.singleUnits, sleepSeconds: sleep });
      const one = async (file: string, args: string[]): Promise<Finished> => {
        execFileSync('make', ['-s', 'clean'], { cwd: dir, stdio: 'ignore' });
        const f = await launch(file, args, dir).done;
        if (f.code !== 0) throw new Error(`${file} ${args.join(' ')} failed: ${f.stderr}`);
        return f;
      };
      const mp = (): Promise<Finished> =>
        one(process.execPath, [
          mpmakeCli,
          '--mp-quiet',
          `--mp-hosts=${hostList(agents)}`,
          `-j${j}`,
        ]);
      const mk = (): Promise<Finished> => one('make', [`-j${j}`]);
      await mp();
      await mk();
      const m: number[] = [];
      const k: number[] = [];
      for (let r = 0; r < options.singleRuns; r++) {
        m.push((await mp()).wallMs);
        k.push((await mk()).wallMs);
        process.stderr.write(
          `twelve-users: single-user round ${r + 1}/${options.singleRuns}: ` +
            `mpmake ${fmt(m[r]! / 1000)} s, make ${fmt(k[r]! / 1000)} s\n`,
        );
      }
      single = {
        mpmakeMs: median(m),
        makeMs: median(k),
        idealMs: Math.ceil(options.singleUnits / j) * sleep * 1000,
        samples: { mpmake: m, make: k },
      };
    }

    // Targets.
    const top = summary[maxUsers]!;
    const first = summary[Math.min(...users)]!;
    const mpRefusals = users.reduce(
      (s, n) => s + summary[n]!.mpmake.refusedLines + summary[n]!.mpmake.failedUsers,
      0,
    );
    const growth =
      maxUsers > Math.min(...users)
        ? (top.mpmake.avgMs - first.mpmake.avgMs) / (top.idealMs - first.idealMs)
        : NaN;
    const pointRatios = Object.fromEntries(
      users.map((n) => [n, summary[n]!.mpmake.avgMs / summary[n]!.idealMs]),
    );
    const checks = {
      spreadAtMaxUsers: top.mpmake.spread,
      spreadOk: top.mpmake.spread <= TWELVE_USERS_TARGETS.spread,
      mpmakeRefusals: mpRefusals,
      refusalsOk: mpRefusals <= TWELVE_USERS_TARGETS.refusals,
      growthRatio: growth,
      growthOk: growth <= TWELVE_USERS_TARGETS.growthRatio,
      pointRatios,
      singleUserS: single ? single.mpmakeMs / 1000 : undefined,
      singleOk: single ? single.mpmakeMs / 1000 <= TWELVE_USERS_TARGETS.singleUserS : undefined,
    };
    const json: TwelveUsersResult = {
      benchmark: 'twelve-users',
      date: new Date().toISOString(),
      machine: machine(),
      loadavg1Before: loadBefore,
      options,
      targets: TWELVE_USERS_TARGETS,
      summary,
      single,
      checks,
      samples,
    };

    await writeTwelveUsers(json);
    return json;
  } finally {
    await stopAgents(agents);
    rmSync(base, { recursive: true, force: true });
  }
}

export interface TwelveUsersResult {
  benchmark: 'twelve-users';
  date: string;
  machine: Machine;
  /** Absent in results written before it was recorded. */
  loadavg1Before?: number;
  options: TwelveUsersOptions;
  targets: typeof TWELVE_USERS_TARGETS;
  summary: Record<number, { idealMs: number } & Record<System, PointSummary>>;
  single: { mpmakeMs: number; makeMs: number; idealMs: number; samples: unknown } | undefined;
  checks: {
    spreadAtMaxUsers: number;
    spreadOk: boolean;
    mpmakeRefusals: number;
    refusalsOk: boolean;
    growthRatio: number;
    growthOk: boolean;
    pointRatios: Record<number, number>;
    singleUserS: number | undefined;
    singleOk: boolean | undefined;
  };
  samples: unknown;
}

/**
 * Writes results/twelve-users.{json,md,svg,png} from a result (a fresh one,
 * or the JSON file read back by --replot); returns the markdown.
 */
export async function writeTwelveUsers(json: TwelveUsersResult): Promise<string> {
  const { options, summary, single, checks } = json;
  const { users, units, sleep, slots, runs } = options;
  const nAgents = options.agents;
  const totalSlots = nAgents * slots;
  const maxUsers = Math.max(...users);
  const top = summary[maxUsers]!;
  const mpRefusals = checks.mpmakeRefusals;
  const growth = checks.growthRatio;
  const pointRatios = checks.pointRatios;
  // The table.
  const s = (ms: number): string => fmt(ms / 1000);
  const nodesCell = (p: PointSummary): string =>
    Object.entries(p.jobsPerNode)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([id, n]) => `${id.replace(/^bench-users-/, 'n')} ${Math.round(n)}`)
      .join(', ') || '-';
  const rows = users.map((n) => {
    const p = summary[n]!;
    return [
      n,
      s(p.idealMs),
      s(p.mpmake.avgMs),
      fmt(p.mpmake.spread),
      p.mpmake.refusedLines + p.mpmake.failedUsers,
      nodesCell(p.mpmake),
      s(p.make.avgMs),
      fmt(p.make.spread),
      s(p['first-free'].avgMs),
      `${p['first-free'].refusedLines} / ${p['first-free'].failedUsers}`,
    ];
  });
  const m = json.machine;
  const perUserWork = `${units} × sleep ${sleep}`;
  const md =
    `# twelve-users: the MOSIX paper's Figure 3 on ${nAgents} loopback agents × ${slots} slots\n\n` +
    `Each user builds its own copy of a sleep tree (${perUserWork} s) at the same moment; ` +
    `ideal = total work / total slots = users × ${units} × ${sleep} s / ${totalSlots}. ` +
    `Medians of ${runs} interleaved rounds on ${m.cpus} CPUs (${m.cpuModel}), ${m.make}, ` +
    `Node ${m.node}${json.loadavg1Before !== undefined ? `; load average ${fmt(json.loadavg1Before)} before` : ''}; refusals and failed builds are totals over all rounds. ` +
    `Jobs per node: summed over the users, per round.\n\n` +
    markdownTable(
      [
        'users',
        'ideal s',
        'mpmake avg s',
        'mpmake spread',
        'mpmake refusals',
        'mpmake jobs per node',
        `make -j${totalSlots} avg s`,
        'make spread',
        'first-free avg s',
        'first-free refused lines / failed builds',
      ],
      rows,
    ) +
    `\nTargets (mpmake): at ${maxUsers} users spread ≤ ${TWELVE_USERS_TARGETS.spread} ` +
    `(measured ${fmt(checks.spreadAtMaxUsers)}, ${verdict(checks.spreadOk)}); ` +
    `zero refusals (measured ${mpRefusals}, ${verdict(checks.refusalsOk)}); ` +
    `per-user time grows no faster than total work / total slots, ±15 % ` +
    `(growth from ${Math.min(...users)} to ${maxUsers} users = ${fmt(growth)} × ideal, ` +
    `${verdict(checks.growthOk)}; per point: ` +
    users.map((n) => `${n}: ${fmt(pointRatios[n]!)}`).join(', ') +
    ` × ideal).\n` +
    (single
      ? `\nSingle user: ${options.singleUnits} × sleep ${sleep} at -j${nAgents * options.singleSlots} ` +
        `over ${nAgents} agents × ${options.singleSlots} slots: mpmake ${s(single.mpmakeMs)} s, ` +
        `local make ${s(single.makeMs)} s, ideal ${s(single.idealMs)} s; target ≤ ` +
        `${TWELVE_USERS_TARGETS.singleUserS} s (${verdict(checks.singleOk === true)}). ` +
        `Medians of ${options.singleRuns} interleaved runs, wall time from spawn to exit.\n`
      : '') +
    `\nSleep recipes cost no CPU, so local make (every build on this machine) is not slowed ` +
    `by more users; the cluster is bounded by its ${totalSlots} slots. first-free builds ` +
    `run with -k: a refused line fails at once, so those builds end early and incomplete.\n`;

  const svg = lineChart({
    title: `Average build time per user vs users (${nAgents} agents × ${slots} slots)`,
    subtitle: `each user: ${perUserWork} s at -j; medians of ${runs} rounds; ${m.cpus}-CPU ${m.cpuModel}, ${json.date.slice(0, 10)}`,
    xLabel: 'users building at once',
    yLabel: 'average time per user (s)',
    xTicks: users,
    series: [
      {
        name: 'ideal (work / slots)',
        color: '#999999',
        dashed: true,
        markers: false,
        points: users.map((n) => [n, summary[n]!.idealMs / 1000]),
      },
      {
        name: 'mpmake -j',
        color: '#1f77b4',
        points: users.map((n) => [n, summary[n]!.mpmake.avgMs / 1000]),
      },
      {
        name: `make -j${totalSlots} (local)`,
        color: '#2ca02c',
        points: users.map((n) => [n, summary[n]!.make.avgMs / 1000]),
      },
      {
        name: 'first-free (LSF-like)',
        color: '#d62728',
        points: users.map((n) => [n, summary[n]!['first-free'].avgMs / 1000]),
      },
    ],
    rows: [
      {
        name: 'first-free: refused lines / failed builds',
        color: '#d62728',
        cells: users.map((n) => {
          const p = summary[n]!['first-free'];
          return `${Math.round(p.refusedLines / runs)}/${Math.round(p.failedUsers / runs)}`;
        }),
      },
      {
        name: 'mpmake: slowest / fastest user',
        color: '#1f77b4',
        cells: users.map((n) => fmt(summary[n]!.mpmake.spread)),
      },
    ],
    notes: [
      `first-free: per round (mean of ${runs}); a refused line fails at once (builds run with -k), so those builds end early and incomplete.`,
      `local make: sleep recipes use no CPU, so it is not slowed by more users on one machine.`,
      `mpmake at ${maxUsers} users: spread ${fmt(top.mpmake.spread)} (target ≤ ${TWELVE_USERS_TARGETS.spread}), ${mpRefusals} refusals.`,
    ],
  });
  const paths = await writeResults('twelve-users', json, md);
  const svgPath = writeResultFile('twelve-users.svg', svg);
  const png = renderPng(svgPath);
  process.stdout.write(
    md + `\nwrote ${[...paths, svgPath, png ?? '(no rsvg-convert: no PNG)'].join(', ')}\n`,
  );
  return md;
}

/** Defaults, as `make bench` runs it. */
export const TWELVE_USERS_DEFAULTS: TwelveUsersOptions = {
  users: [1, 2, 4, 6, 8, 12],
  units: 32,
  sleep: 0.5,
  agents: 4,
  slots: 4,
  runs: 3,
  singleUnits: 64,
  singleSlots: 8,
  singleRuns: 5,
};

if (isMain(import.meta.url)) {
  try {
    const argv = process.argv.slice(2);
    if (takeFlag(argv, 'replot')) {
      const path = join(resultsDir, 'twelve-users.json');
      await writeTwelveUsers(JSON.parse(readFileSync(path, 'utf8')) as TwelveUsersResult);
    } else {
      const users = takeListOption(argv, 'users');
      const o = numberOptions(argv, [
        'units',
        'sleep',
        'agents',
        'slots',
        'runs',
        'single-units',
        'single-slots',
        'single-runs',
      ]);
      const d = TWELVE_USERS_DEFAULTS;
      await runTwelveUsers({
        users: users ?? d.users,
        units: o['units'] ?? d.units,
        sleep: o['sleep'] ?? d.sleep,
        agents: o['agents'] ?? d.agents,
        slots: o['slots'] ?? d.slots,
        runs: o['runs'] ?? d.runs,
        singleUnits: o['single-units'] ?? d.singleUnits,
        singleSlots: o['single-slots'] ?? d.singleSlots,
        singleRuns: o['single-runs'] ?? d.singleRuns,
      });
    }
  } catch (err) {
    process.stderr.write(`twelve-users: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
