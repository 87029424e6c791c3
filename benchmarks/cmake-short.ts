/**
 * Short jobs stay local (issue 16): a CMake-generated tree (Unix Makefiles)
 * built with `mpmake -j` against loopback agents. CMake's makefiles run many
 * helper lines (`cmake -E cmake_echo_color`, `cmake -E cmake_depends`, …)
 * that take milliseconds; sent to a node, each pays a round trip. Three
 * clean builds of the same tree:
 *
 * - before: `--mp-no-learn`, every line that reaches the coordinator goes to a node;
 * - first: a fresh cache, so placement learns during the build only;
 * - again: with the history the first build left.
 *
 * Prints the lines sent to nodes and kept on the client, and the wall time
 * (every agent runs on this machine, so wall times are indicative only).
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
  kinds: Array<{
    kind: string;
    runs: number;
    cpuMs: number | undefined;
    wallMs: number | undefined;
  }>;
}

const median = (v: readonly number[] | undefined): number | undefined =>
  v && v.length > 0 ? [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] : undefined;

function learntFrom(cache: string): Learnt | undefined {
  const dir = join(cache, 'mpmake', 'history');
  const [file] = existsSync(dir) ? readdirSync(dir) : [];
  if (file === undefined) return undefined;
  const h = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
    times: {
      roundTripMs?: number;
      commands: Record<string, { n: number; recentMs: number[]; recentCpuMs?: number[] }>;
    };
  };
  return {
    roundTripMs: h.times.roundTripMs,
    kinds: Object.entries(h.times.commands).map(([kind, c]) => ({
      kind,
      runs: c.n,
      cpuMs: median(c.recentCpuMs),
      wallMs: median(c.recentMs),
    })),
  };
}

interface Row {
  run: string;
  wallMs: number;
  remote: number;
  local: number;
  short: number;
  total: number;
}

export async function runCmakeShort(opts: {
  agents: number;
  slots: number;
  units: number;
}): Promise<{ rows: Row[]; learnt: Learnt | undefined }> {
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
        jobs: { short?: number };
      };
      rows.push({
        run,
        wallMs: m.wallMs,
        remote: r.jobs.remote,
        local: r.jobs.local,
        short: r.jobs.short ?? 0,
        total: r.jobs.total,
      });
    }
    return { rows, learnt: learntFrom(cache) };
  } finally {
    await stopAgents(agents);
    rmSync(work, { recursive: true, force: true });
  }
}

/** What placement decided from: the round trip, and each kind's typical CPU (its cost) and wall time. */
function learntTable(learnt: Learnt | undefined): string {
  if (!learnt) return '';
  const trip = learnt.roundTripMs;
  const rows = [...learnt.kinds]
    .sort((a, b) => (a.cpuMs ?? a.wallMs ?? 0) - (b.cpuMs ?? b.wallMs ?? 0))
    .map((k) => {
      const cost = k.cpuMs ?? k.wallMs;
      const where = trip !== undefined && cost !== undefined && cost < trip ? 'client' : 'nodes';
      return [k.kind, k.runs, k.cpuMs === undefined ? '-' : fmt(k.cpuMs), k.wallMs ?? '-', where];
    });
  return (
    `\nLearnt (the history after the last run): round trip ${trip === undefined ? '-' : fmt(trip)} ms ` +
    `(median of client wall time less the node's run and queue time). A kind stays on the ` +
    `client when its typical CPU time is below it.\n\n` +
    markdownTable(
      ['kind of command', 'runs', 'CPU ms (median)', 'wall ms on node (median)', 'placed on'],
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
): { md: string; target: boolean } {
  const before = rows[0]!;
  const again = rows[2]!;
  const steps = opts.units + 2;
  const target = again.remote <= steps;
  const ccLocal = (learnt?.kinds ?? []).filter((k) => {
    const cost = k.cpuMs ?? k.wallMs;
    const trip = learnt?.roundTripMs;
    return (
      /^(cc|gcc|clang)\b/.test(k.kind) && cost !== undefined && trip !== undefined && cost < trip
    );
  });
  const gain = before.wallMs - again.wallMs;
  const table = markdownTable(
    ['run', 'lines to nodes', 'kept local (short)', 'local in all', 'lines seen', 'wall s'],
    rows.map((r) => [r.run, r.remote, r.short, r.local, r.total, fmt(r.wallMs / 1000)]),
  );
  const md =
    `# Short jobs stay local: a CMake tree (${opts.units} C files + 2 links), ` +
    `${opts.agents} agents × ${opts.slots} slots on loopback\n\n${table}\n` +
    `Lines sent to nodes: ${before.remote} before, ${again.remote} with the history ` +
    `(target: no more than the ${steps} compile and link steps): ${target ? 'met' : 'MISSED'}.\n` +
    `Compiles still on nodes: ${ccLocal.length === 0 ? 'yes' : `no, ${ccLocal.map((k) => k.kind).join(', ')} ran under a round trip's time and stayed on the client`}.\n` +
    `Wall time with the history against --mp-no-learn: ${fmt(again.wallMs / 1000)} s against ` +
    `${fmt(before.wallMs / 1000)} s (target: shorter): ${gain > 0 ? 'met' : 'MISSED'} ` +
    `(every agent and the client share one machine, so wall times are indicative only).\n` +
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
    };
    const { md, target } = render(stored.opts, stored.rows, stored.learnt);
    await publishResults('cmake-short', { ...stored, target }, md);
  } else {
    const o = numberOptions(args, ['agents', 'slots', 'units']);
    const opts = { agents: o['agents'] ?? 2, slots: o['slots'] ?? 2, units: o['units'] ?? 21 };
    const { rows, learnt } = await runCmakeShort(opts);
    const { md, target } = render(opts, rows, learnt);
    await publishResults('cmake-short', { opts, machine: machine(), rows, learnt, target }, md);
  }
}
