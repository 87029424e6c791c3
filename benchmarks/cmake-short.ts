/**
 * Short jobs stay local (issue 16): a CMake-generated tree (Unix Makefiles)
 * built with `mpmake -j` against loopback agents. CMake's makefiles run many
 * helper lines (`cmake -E cmake_echo_color`, `cmake -E cmake_depends`, …)
 * that take milliseconds; sent to a node, each pays a round trip. Plain
 * make, then three clean mpmake builds of the same tree:
 *
 * - before: `--mp-no-learn`, every line that reaches the coordinator goes to a node;
 * - first: a fresh cache, so placement learns during the build only;
 * - again: with the history the first build left.
 *
 * Prints the lines sent to nodes and kept on the client, and the wall time
 * against plain make, with the machine's load before and after (every
 * agent runs on this machine, so wall times are indicative only).
 *
 *   node dist/benchmarks/cmake-short.js [--agents 2] [--slots 2] [--units 21]
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { CommandTimes, type CommandTimesData } from '../lib/placement/command-times.js';
import {
  fmt,
  hostList,
  isMain,
  machine,
  markdownTable,
  measure,
  mpmakeCli,
  numberOptions,
  publishResults,
  resultsDir,
  startAgents,
  stopAgents,
  type Report,
} from './common.js';

/** Writes a CMake project: a static library and a program, `units` C files between them. */
function writeProject(dir: string, units: number): void {
  const lib = Math.ceil(units / 2);
  const names = Array.from({ length: units }, (_, i) => `u${String(i).padStart(2, '0')}`);
  mkdirSync(join(dir, 'src'), { recursive: true });
  for (const [i, n] of names.entries()) {
    const calls =
      i >= lib
        ? names
            .slice(0, lib)
            .map((m) => `  s += ${m}(x);`)
            .join('\n')
        : '';
    const decls =
      i >= lib
        ? names
            .slice(0, lib)
            .map((m) => `int ${m}(int);`)
            .join('\n')
        : '';
    writeFileSync(
      join(dir, 'src', `${n}.c`),
      `${decls}\nint ${n}(int x) {\n  int s = x;\n${calls}\n  for (int k = 0; k < 1000; k++) s = s * 31 + k;\n  return s;\n}\n`,
    );
  }
  const main = names
    .slice(lib)
    .map((n) => `int ${n}(int);`)
    .join('\n');
  writeFileSync(
    join(dir, 'src', 'main.c'),
    `#include <stdio.h>\n${main}\nint main(void) {\n  int s = 0;\n${names
      .slice(lib)
      .map((n) => `  s += ${n}(1);`)
      .join('\n')}\n  printf("%d\\n", s);\n  return 0;\n}\n`,
  );
  const list = (ns: string[]): string => ns.map((n) => `src/${n}.c`).join(' ');
  writeFileSync(
    join(dir, 'CMakeLists.txt'),
    [
      'cmake_minimum_required(VERSION 3.13)',
      'project(short C)',
      `add_library(core STATIC ${list(names.slice(0, lib))})`,
      `add_executable(app src/main.c ${list(names.slice(lib))})`,
      'target_link_libraries(app core)',
      '',
    ].join('\n'),
  );
}

/** What the history taught, after the runs: the round trip and each kind's typical CPU and wall time. */
interface Learnt {
  roundTripMs: number | undefined;
  /** The nodes' launch of a line (median CPU of the trivial kinds); absent in older results. */
  launchMs?: number | undefined;
  kinds: Array<{
    kind: string;
    runs: number;
    cpuMs: number | undefined;
    wallMs: number | undefined;
    /** The two costs placement weighed, ms (absent in older results). */
    localMs?: number | undefined;
    remoteMs?: number | undefined;
  }>;
}

const median = (v: readonly number[] | undefined): number | undefined =>
  v && v.length > 0 ? [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] : undefined;

function learntFrom(cache: string): Learnt | undefined {
  const dir = join(cache, 'mpmake', 'history');
  const [file] = existsSync(dir) ? readdirSync(dir) : [];
  if (file === undefined) return undefined;
  const h = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { times: CommandTimesData };
  const times = new CommandTimes(h.times);
  return {
    roundTripMs: h.times.roundTripMs,
    launchMs: times.launchMs,
    kinds: Object.entries(h.times.commands).map(([kind, c]) => ({
      kind,
      runs: c.n,
      cpuMs: median(c.recentCpuMs),
      wallMs: median(c.recentMs),
      localMs: times.estimate(kind)?.localMs,
      remoteMs: times.estimate(kind)?.remoteMs,
    })),
  };
}

interface Row {
  run: string;
  wallMs: number;
  remote: number;
  local: number;
  short: number;
  /** Cheaper on the client but sent: the client ran as many short lines as it has cores. */
  shortBusy?: number;
  total: number;
}

export async function runCmakeShort(opts: {
  agents: number;
  slots: number;
  units: number;
}): Promise<{ rows: Row[]; learnt: Learnt | undefined; plainMs: number; load: number[] }> {
  const work = mkdtempSync(join(tmpdir(), 'mpmake-bench-cmake-'));
  const cache = join(work, 'cache');
  const agents = await startAgents(opts.agents, opts.slots, 'cmake');
  try {
    writeProject(join(work, 'project'), opts.units);
    const build = join(work, 'build');
    const gen = spawnSync(
      'cmake',
      ['-S', join(work, 'project'), '-B', build, '-G', 'Unix Makefiles'],
      { encoding: 'utf8' },
    );
    if (gen.status !== 0) throw new Error(`cmake failed: ${gen.stderr}`);
    const load = [loadavg()[0]!];
    spawnSync('make', ['clean'], { cwd: build });
    const plain = await measure('make', [`-j${opts.agents * opts.slots}`], build);
    if (plain.code !== 0) throw new Error(`plain make failed: ${plain.stderr}`);
    const rows: Row[] = [];
    for (const [run, extra] of [
      ['before (--mp-no-learn)', ['--mp-no-learn']],
      ['first build, fresh cache', []],
      ['again, with the history', []],
    ] as const) {
      spawnSync('make', ['clean'], { cwd: build });
      const report = join(work, 'report.json');
      const m = await measure(
        process.execPath,
        [
          mpmakeCli,
          `-j${opts.agents * opts.slots}`,
          `--mp-hosts=${hostList(agents)}`,
          `--mp-report=${report}`,
          ...extra,
        ],
        build,
        { XDG_CACHE_HOME: cache, MPMAKE_NO_LEARN: '0' },
      );
      if (m.code !== 0) throw new Error(`${run}: mpmake failed: ${m.stderr}`);
      const r = JSON.parse(readFileSync(report, 'utf8')) as Report & {
        jobs: { short?: number; shortBusy?: number };
      };
      rows.push({
        run,
        wallMs: m.wallMs,
        remote: r.jobs.remote,
        local: r.jobs.local,
        short: r.jobs.short ?? 0,
        shortBusy: r.jobs.shortBusy ?? 0,
        total: r.jobs.total,
      });
    }
    load.push(loadavg()[0]!);
    return { rows, learnt: learntFrom(cache), plainMs: plain.wallMs, load };
  } finally {
    await stopAgents(agents);
    rmSync(work, { recursive: true, force: true });
  }
}

/** What placement decided from: the round trip, and each kind's typical CPU (its cost) and wall time. */
function learntTable(learnt: Learnt | undefined): string {
  if (!learnt) return '';
  const trip = learnt.roundTripMs;
  const ms = (v: number | undefined): string | number => (v === undefined ? '-' : fmt(v));
  const rows = [...learnt.kinds]
    .sort((a, b) => (a.cpuMs ?? a.wallMs ?? 0) - (b.cpuMs ?? b.wallMs ?? 0))
    .map((k) => [
      k.kind,
      k.runs,
      ms(k.cpuMs),
      k.wallMs ?? '-',
      ms(k.localMs),
      ms(k.remoteMs),
      k.localMs !== undefined && k.remoteMs !== undefined && k.localMs < k.remoteMs
        ? 'client'
        : 'nodes',
    ]);
  return (
    `\nLearnt (the history after the last run): round trip ${ms(trip)} ms ` +
    `(median of client wall time less the node's run and queue time); a node's launch ` +
    `${ms(learnt.launchMs)} ms (median CPU time of the trivial kinds: cp, touch, echo…). ` +
    `A kind stays on the client when its own cost there (CPU time less the launch) is below ` +
    `a round trip plus the launch.\n\n` +
    markdownTable(
      [
        'kind of command',
        'runs',
        'CPU ms (median)',
        'wall ms on node (median)',
        'own ms (client)',
        'trip + launch ms',
        'placed on',
      ],
      rows,
    )
  );
}

interface Opts {
  agents: number;
  slots: number;
  units: number;
}

/**
 * The figures and the verdicts: lines sent to nodes (target: no more than
 * the compile and link steps), compiles still on nodes (no `cc` kind kept
 * on the client), and the gain in wall time over --mp-no-learn.
 */
function render(
  opts: Opts,
  rows: Row[],
  learnt: Learnt | undefined,
  run: { plainMs?: number; load?: number[]; cpus?: number },
): { md: string; target: boolean } {
  const { plainMs, load } = run;
  const before = rows[0]!;
  const again = rows[2]!;
  const steps = opts.units + 2;
  const target = again.remote <= steps;
  const ccLocal = (learnt?.kinds ?? []).filter(
    (k) =>
      /^(cc|gcc|clang)\b/.test(k.kind) &&
      k.localMs !== undefined &&
      k.remoteMs !== undefined &&
      k.localMs < k.remoteMs,
  );
  const gain = before.wallMs - again.wallMs;
  const table = markdownTable(
    [
      'run',
      'lines to nodes',
      'kept local (short)',
      'short, sent (client full)',
      'local in all',
      'lines seen',
      'wall s',
    ],
    [
      ...(plainMs === undefined
        ? []
        : [['plain make (no mpmake)', '-', '-', '-', '-', '-', fmt(plainMs / 1000)]]),
      ...rows.map((r) => [
        r.run,
        r.remote,
        r.short,
        r.shortBusy ?? '-',
        r.local,
        r.total,
        fmt(r.wallMs / 1000),
      ]),
    ],
  );
  const loadNote =
    load && load.length > 0
      ? `1-minute load ${load.map((l) => fmt(l)).join(' before, ')} after, on ${run.cpus ?? '?'} cores`
      : '';
  const md =
    `# Short jobs stay local: a CMake tree (${opts.units} C files + 2 links), ` +
    `${opts.agents} agents × ${opts.slots} slots on loopback\n\n${table}\n` +
    `Lines sent to nodes: ${before.remote} before, ${again.remote} with the history ` +
    `(target: no more than the ${steps} compile and link steps): ${target ? 'met' : 'MISSED'}.\n` +
    `Compiles still on nodes: ${ccLocal.length === 0 ? 'yes' : `no, ${ccLocal.map((k) => k.kind).join(', ')} ran under a round trip's time and stayed on the client`}.\n` +
    `Wall time with the history against --mp-no-learn: ${fmt(again.wallMs / 1000)} s against ` +
    `${fmt(before.wallMs / 1000)} s (target: shorter): ${gain > 0 ? 'met' : 'MISSED'} ` +
    `(every agent and the client share one machine, so wall times are indicative only).\n` +
    (plainMs === undefined
      ? ''
      : `Wall time with the history against plain make -j${opts.agents * opts.slots}: ` +
        `${fmt(again.wallMs / 1000)} s against ${fmt(plainMs / 1000)} s.\n`) +
    (loadNote ? `Machine: ${loadNote}.\n` : '') +
    learntTable(learnt);
  return { md, target };
}

if (isMain(import.meta.url)) {
  const args = process.argv.slice(2);
  if (args[0] === '--render') {
    // Renders the markdown again from the stored JSON (no build run).
    const stored = JSON.parse(readFileSync(join(resultsDir, 'cmake-short.json'), 'utf8')) as {
      opts: Opts;
      rows: Row[];
      learnt?: Learnt;
      plainMs?: number;
      load?: number[];
      machine?: { cpus: number };
    };
    const { md, target } = render(stored.opts, stored.rows, stored.learnt, {
      ...(stored.plainMs !== undefined ? { plainMs: stored.plainMs } : {}),
      ...(stored.load ? { load: stored.load } : {}),
      ...(stored.machine ? { cpus: stored.machine.cpus } : {}),
    });
    await publishResults('cmake-short', { ...stored, target }, md);
  } else {
    const o = numberOptions(args, ['agents', 'slots', 'units']);
    const opts = { agents: o['agents'] ?? 2, slots: o['slots'] ?? 2, units: o['units'] ?? 21 };
    const { rows, learnt, plainMs, load } = await runCmakeShort(opts);
    const m = machine();
    const { md, target } = render(opts, rows, learnt, { plainMs, load, cpus: m.cpus });
    await publishResults(
      'cmake-short',
      { opts, machine: m, rows, learnt, plainMs, load, target },
      md,
    );
  }
}
