/**
 * Shared pieces of the benchmarks: running a command with its wall time and
 * the CPU time of its whole process tree, an agent's CPU time, interleaved
 * runs, medians, and writing results as JSON and a markdown table.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { localSecret } from '../lib/agent/local-secret.js';
import { spawnLocalAgent, type LocalAgent } from '../lib/agent/spawn-agent.js';
import type { BuildReport } from '../lib/coordinator/build-report.js';

/** The repository root (dist/benchmarks/common.js -> ../..). */
export const repoRoot = findRoot(dirname(fileURLToPath(import.meta.url)));
export const mpmakeCli = join(repoRoot, 'dist', 'cli', 'mpmake.js');
export const resultsDir = join(repoRoot, 'benchmarks', 'results');

function findRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (pkg.name === 'mpmake') return dir;
    } catch {
      // keep walking
    }
    if (dirname(dir) === dir) throw new Error(`no mpmake package.json above ${start}`);
  }
}

/** Environment for the measured commands: no parent make, no MPMAKE_* settings, no tap loaders. */
export function benchEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined) continue;
    if (/^(MAKEFLAGS|MFLAGS|GNUMAKEFLAGS|MAKELEVEL|MAKEFILES|MAKE_TERMOUT|MAKE_TERMERR)$/.test(k))
      continue;
    if (k.startsWith('MPMAKE_') || k === 'NODE_OPTIONS') continue;
    env[k] = v;
  }
  env['LC_ALL'] = 'C';
  env['XDG_CONFIG_HOME'] = join(tmpdir(), 'mpmake-bench-no-config');
  // The secret the bench agents listen with (spawnLocalAgent's default).
  env['MPMAKE_SECRET_FILE'] = localSecret().path;
  // Every line to the nodes, as measured so far; cmake-short.ts turns learning on.
  env['MPMAKE_NO_LEARN'] = '1';
  return env;
}

export interface Measured {
  wallMs: number;
  /** User + system CPU of the command and every descendant it waited for. */
  cpuMs: number;
  code: number | null;
  stderr: string;
}

/**
 * Runs `file args` under bash, whose `times` then reports the CPU time of
 * all its waited-for descendants: for mpmake that is the coordinator, make,
 * the shims and any line run locally, and not an agent started elsewhere.
 */
export function measure(
  file: string,
  args: string[],
  cwd: string,
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const script = '"$@" >/dev/null 3>&-; rc=$?; times >&3; exit $rc';
    const child = spawn('/bin/bash', ['-c', script, 'bash', file, ...args], {
      cwd,
      env: { ...benchEnv(), ...extraEnv },
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let times = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdio[3]!.on('data', (c: Buffer) => (times += c.toString()));
    const start = process.hrtime.bigint();
    child.on('error', reject);
    child.on('close', (code) => {
      const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
      // `times`: the shell's own user/sys, then its children's: "0m1.234s 0m0.567s".
      const childLine = times.trim().split('\n')[1] ?? '';
      const secs = [...childLine.matchAll(/(\d+)m([\d.]+)s/g)].map(
        (m) => Number(m[1]) * 60 + Number(m[2]),
      );
      if (secs.length !== 2) {
        reject(new Error(`cannot read bash's times output: ${JSON.stringify(times)}`));
        return;
      }
      resolve({ wallMs, cpuMs: (secs[0]! + secs[1]!) * 1000, code, stderr });
    });
  });
}

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU time (ms) a process has used, with that of the children it waited for (its jobs). */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ": state is field 3; utime, stime, cutime, cstime are fields 14-17.
  const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
  return (ticks * 1000) / CLOCK_TICKS;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Runs every variant once per round, rounds times, in the order A B C A B C
 * (so drift in the machine's state hits all variants alike).
 */
export async function interleave<K extends string, R>(
  rounds: number,
  variants: Record<K, () => Promise<R>>,
  onResult?: (variant: K, round: number, result: R) => void,
): Promise<Record<K, R[]>> {
  const keys = Object.keys(variants) as K[];
  const out = Object.fromEntries(keys.map((k) => [k, [] as R[]])) as Record<K, R[]>;
  for (let round = 0; round < rounds; round++) {
    for (const k of keys) {
      const r = await variants[k]();
      out[k].push(r);
      onResult?.(k, round, r);
    }
  }
  return out;
}

/** `--name value` / `--name=value` options, numbers only. */
export function numberOptions(argv: string[], known: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m || !known.includes(m[1]!)) {
      throw new Error(`unknown argument ${arg}; known: ${known.map((k) => `--${k} N`).join(' ')}`);
    }
    const raw = m[2] ?? argv[++i];
    const n = Number(raw);
    if (raw === undefined || !Number.isFinite(n) || n < 0) {
      throw new Error(`--${m[1]} needs a non-negative number, got ${raw ?? 'nothing'}`);
    }
    out[m[1]!] = n;
  }
  return out;
}

export interface Machine {
  node: string;
  make: string;
  cpus: number;
  cpuModel: string;
  /** The 1-minute load average when the benchmark wrote its results: others' work on a shared machine. */
  loadavg1: number;
  /** The checked-out commit (uncommitted edits not shown). */
  commit: string;
}

export function machine(): Machine {
  const make = execFileSync('make', ['--version']).toString().split('\n')[0] ?? 'unknown';
  return {
    node: process.version,
    make,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    loadavg1: Math.round(loadavg()[0]! * 100) / 100,
    commit: headCommit(),
  };
}

function headCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .toString()
      .trim();
  } catch {
    return 'unknown';
  }
}

/** A markdown table from a header row and rows. */
export function markdownTable(header: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n') + '\n';
}

/**
 * Writes results/NAME.json and results/NAME.md, formatted by prettier as
 * `make check` expects of every file under benchmarks/; returns their paths.
 */
/** Writes a benchmark's results and prints its table and where it went. */
export async function publishResults(name: string, json: unknown, markdown: string): Promise<void> {
  const paths = await writeResults(name, json, markdown);
  process.stdout.write(markdown + `\nwrote ${paths.join(', ')}\n`);
}

export async function writeResults(
  name: string,
  json: unknown,
  markdown: string,
): Promise<string[]> {
  mkdirSync(resultsDir, { recursive: true });
  const jsonPath = join(resultsDir, `${name}.json`);
  const mdPath = join(resultsDir, `${name}.md`);
  writeFileSync(jsonPath, await pretty(jsonPath, JSON.stringify(json, null, 2) + '\n'));
  writeFileSync(mdPath, await pretty(mdPath, markdown));
  return [jsonPath, mdPath];
}

/** Formats `text` as prettier would format `path`; unchanged where prettier is not installed. */
export async function pretty(path: string, text: string): Promise<string> {
  try {
    const prettier = await import('prettier');
    const config = (await prettier.resolveConfig(path)) ?? {};
    return await prettier.format(text, { ...config, filepath: path });
  } catch {
    return text;
  }
}

export function fmt(n: number, digits = 2): string {
  return n.toFixed(digits);
}

/** True when this module is the program being run (not imported by run-all). */
export function isMain(metaUrl: string): boolean {
  return process.argv[1] !== undefined && fileURLToPath(metaUrl) === process.argv[1];
}

// ---------------------------------------------------------------------------
// Clusters of loopback agents, launched processes, RSS sampling, reports

/** Starts `n` loopback agents with `slots` each, in parallel; ids PREFIX-0 … */
export async function startAgents(n: number, slots: number, prefix: string): Promise<LocalAgent[]> {
  const started = await Promise.allSettled(
    Array.from({ length: n }, (_, i) =>
      spawnLocalAgent({ slots, id: `${prefix}-${i}`, env: benchEnv() }),
    ),
  );
  const agents = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await stopAgents(agents);
    throw failed.reason;
  }
  return agents;
}

/** Stops every agent (SIGCONT first, in case a benchmark stopped one), by its pid. */
export async function stopAgents(agents: readonly LocalAgent[]): Promise<void> {
  await Promise.all(
    agents.map((a) => {
      // Only while it is still our live child: a reaped pid may be someone else's.
      if (a.process.exitCode === null && a.process.signalCode === null) a.process.kill('SIGCONT');
      return a.stop();
    }),
  );
}

/** The `--mp-hosts` value for these agents. */
export function hostList(agents: readonly LocalAgent[]): string {
  return agents.map((a) => a.hostSpec).join(' ');
}

export interface Finished {
  wallMs: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  /** hrtime (ms) when it was spawned and when it closed, for timelines. */
  startMs: number;
  endMs: number;
}

export interface Launched {
  pid: number;
  startMs: number;
  done: Promise<Finished>;
}

/** Milliseconds on a monotonic clock. */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/**
 * Spawns `file args` directly (so `pid` is the process itself, e.g. the
 * mpmake coordinator), stdout to /dev/null, stderr collected; calls
 * `onStderrLine(line, atMs)` as each line of stderr arrives.
 */
export function launch(
  file: string,
  args: string[],
  cwd: string,
  onStderrLine?: (line: string, atMs: number) => void,
): Launched {
  const child = spawn(file, args, { cwd, env: benchEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
  const startMs = nowMs();
  let stderr = '';
  let partial = '';
  child.stderr!.on('data', (c: Buffer) => {
    const at = nowMs();
    const text = c.toString();
    stderr += text;
    if (!onStderrLine) return;
    const lines = (partial + text).split('\n');
    partial = lines.pop()!;
    for (const line of lines) onStderrLine(line, at);
  });
  const done = new Promise<Finished>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const endMs = nowMs();
      resolve({ wallMs: endMs - startMs, code, signal, stderr, startMs, endMs });
    });
  });
  return { pid: child.pid ?? -1, startMs, done };
}

/** The fields of an mpmake `--mp-report` the benchmarks read. */
export type Report = Pick<BuildReport, 'exitCode' | 'wallMs' | 'jobs' | 'nodes' | 'slots'> &
  Partial<Pick<BuildReport, 'reruns' | 'parallelism'>>;

export function readReport(path: string): Report | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Report;
  } catch {
    return undefined;
  }
}

/** Resident set size now and its peak so far (kB), from /proc/PID/status; undefined once gone. */
export function readRss(pid: number): { rssKb: number; hwmKb: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'latin1');
    const kb = (name: string): number =>
      Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
    const r = { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
    // A zombie (exited, not yet reaped) has a status file without memory lines.
    return Number.isFinite(r.rssKb) ? r : undefined;
  } catch {
    return undefined;
  }
}

export interface RssPeak {
  /** Largest VmRSS seen by sampling. */
  peakRssKb: number;
  /** The kernel's own high-water mark (VmHWM) at the last sample. */
  hwmKb: number;
  samples: number;
}

/**
 * Samples VmRSS of named processes every `intervalMs` until `stop()`,
 * which returns each one's sampled peak (and the kernel's VmHWM as a check).
 */
export function sampleRss(
  pids: Record<string, number>,
  intervalMs = 50,
): { stop(): Record<string, RssPeak> } {
  const peaks: Record<string, RssPeak> = {};
  for (const name of Object.keys(pids)) peaks[name] = { peakRssKb: 0, hwmKb: 0, samples: 0 };
  const tick = (): void => {
    for (const [name, pid] of Object.entries(pids)) {
      const r = readRss(pid);
      if (!r) continue;
      const p = peaks[name]!;
      p.peakRssKb = Math.max(p.peakRssKb, r.rssKb);
      p.hwmKb = Math.max(p.hwmKb, r.hwmKb);
      p.samples++;
    }
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      tick();
      return peaks;
    },
  };
}

/**
 * Renders an SVG to PNG next to it with rsvg-convert, when installed
 * (`apt-get install librsvg2-bin`); returns the PNG's path, or undefined.
 */
export function renderPng(svgPath: string, widthPx = 900): string | undefined {
  const pngPath = svgPath.replace(/\.svg$/, '.png');
  try {
    execFileSync('rsvg-convert', ['-w', String(widthPx), '-o', pngPath, svgPath], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    return pngPath;
  } catch {
    return undefined;
  }
}

/** Writes a file under results/ (text, as is); returns its path. */
export function writeResultFile(name: string, text: string): string {
  mkdirSync(resultsDir, { recursive: true });
  const path = join(resultsDir, name);
  writeFileSync(path, text);
  return path;
}

/** min, median and max of some values, for tables. */
export function spreadOf(values: number[]): { min: number; median: number; max: number } {
  return { min: Math.min(...values), median: median(values), max: Math.max(...values) };
}

export const verdict = (ok: boolean): string => (ok ? 'meets target' : 'MISSES target');

/** Sleeps `ms` milliseconds. */
export const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Takes `--NAME a,b,c` (or `--NAME=a,b,c`) out of argv and returns the
 * numbers, or undefined when absent; the rest of argv is left for
 * numberOptions.
 */
export function takeListOption(argv: string[], name: string): number[] | undefined {
  const i = argv.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (i < 0) return undefined;
  const arg = argv[i]!;
  const inline = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : undefined;
  const raw = inline ?? argv[i + 1];
  argv.splice(i, inline === undefined ? 2 : 1);
  const list = (raw ?? '').split(',').map(Number);
  if (!raw || list.some((n) => !Number.isFinite(n) || n < 0)) {
    throw new Error(`--${name} needs a comma-separated list of numbers, got ${raw ?? 'nothing'}`);
  }
  return list;
}

/** Removes the flag `--NAME` from argv; true when it was there. */
export function takeFlag(argv: string[], name: string): boolean {
  const i = argv.indexOf(`--${name}`);
  if (i >= 0) argv.splice(i, 1);
  return i >= 0;
}
