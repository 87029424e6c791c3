/**
 * "At most one copy of a job writes at any time, whatever fails" (issue
 * 13), measured: a build whose recipes each write their target line by
 * line, logging every write (node, copy, time) to one log under O_APPEND;
 * a fault is injected mid-build; afterwards the log must show no two copies
 * of one target writing at overlapping times, and every target complete.
 * Used by test/faults/one-writer.test.ts (a few repetitions) and
 * benchmarks/one-writer.ts (20 of each).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnLocalAgent, type LocalAgent } from '../../lib/agent/spawn-agent.js';
import { eventually, sleepers, tryKill } from './procs.js';
import { cleanEnv, runMpmake, type RunResult } from './run.js';

export const FAULTS = ['stop-agent', 'stop-client', 'kill-agent', 'kill-client'] as const;
export type Fault = (typeof FAULTS)[number];

/** Lines each recipe writes, one per step. */
const STEPS = 8;
const TARGETS = 4;

export interface Overlap {
  target: string;
  a: string;
  b: string;
  /** How long the two copies wrote at once, ms. */
  ms: number;
}

export interface FaultRun {
  fault: Fault;
  /** mpmake's status (for kill-client: the second build's). */
  code: number | null;
  stderr: string;
  overlaps: Overlap[];
  /** Copies of jobs that wrote (more than TARGETS: some ran again). */
  copies: number;
  /** Targets not holding exactly their STEPS lines at the end. */
  incomplete: string[];
  /** Files left in the build directory besides the makefile, targets, log and report. */
  leftovers: string[];
  /** Job processes still alive after the build. */
  strays: number;
  /** From the fault to the end of the build (for kill-client: of the second one). */
  afterFaultMs: number;
  /** mpmake's --mp-report of the (last) build. */
  report: {
    jobs: { total: number; remote: number; local: number; retried: number };
    nodes: Array<{ id: string; jobs: number }>;
  };
}

/** The lines a copy has logged once it has written step `n` (two per step, two before). */
export const linesAfterStep = (n: number): number => 2 + 2 * n;

/**
 * The build every fault runs: TARGETS targets, each written in STEPS logged
 * steps, `sleep` seconds apart; with `pauseAfter`, every job also sleeps
 * `pauseAfter.sleeps` times more after that step (a quiet moment: nothing
 * of the job is being written).
 */
export function oneWriterMakefile(
  sleep: string,
  pauseAfter?: { step: number; sleeps: number },
): string {
  const names = TARGET_NAMES;
  // Each write is bracketed by log lines: `w NODE COPY MICROSECONDS TARGET`.
  const log = 'echo "w $${MPMAKE_NODE:-local} $$$$ $${EPOCHREALTIME/./} $@" >> writes.log';
  const pause = pauseAfter
    ? `if [ $$i = ${pauseAfter.step} ]; then for j in $$(seq ${pauseAfter.sleeps}); do sleep ${sleep}; done; fi; `
    : '';
  const recipe =
    `\t@${log}; : > $@; ${log}; ` +
    `for i in $$(seq ${STEPS}); do ${log}; echo line$$i >> $@; ${log}; ${pause}sleep ${sleep}; done\n`;
  return (
    'SHELL := /bin/bash\n' +
    `all: ${names.join(' ')}\n` +
    names.map((n) => `${n}:\n${recipe}`).join('')
  );
}

/**
 * The build of a random-moment cut: each recipe appends to the log without
 * a pause for `seconds` (one line per write, through one open file, each
 * line `w NODE COPY MICROSECONDS TARGET SEQUENCE`), then writes its target
 * whole. `marker` is in every recipe's command line (to find its
 * processes).
 */
export function streamMakefile(seconds: number, marker: string, names: string[]): string {
  const us = Math.round(seconds * 1e6);
  const now = '$${EPOCHREALTIME/./}';
  const node = '$${MPMAKE_NODE:-local}';
  const lines = Array.from({ length: STEPS }, (_, i) => i + 1).join(' ');
  const recipe =
    `\t@: ${marker}; exec 3>>writes.log; end=$$(( ${now} + ${us} )); i=0; ` +
    `while now=${now}; [ $$now -lt $$end ]; do i=$$((i+1)); ` +
    `echo "w ${node} $$$$ $$now $@ $$i" >&3; done; exec 3>&-; ` +
    `printf 'line%s\\n' ${lines} > $@\n`;
  return (
    'SHELL := /bin/bash\n' +
    `all: ${names.join(' ')}\n` +
    names.map((n) => `${n}:\n${recipe}`).join('')
  );
}

/** The complete text of every target (what plain make leaves). */
export function wholeTarget(): string {
  return Array.from({ length: STEPS }, (_, i) => `line${i + 1}\n`).join('');
}

export const TARGET_NAMES = Array.from({ length: TARGETS }, (_, i) => `t${i}`);

/**
 * Overlapping write intervals of different copies of one target, by the
 * times the log lines carry (`by: 'time'`), or by their order in the log
 * (`by: 'order'`): on a shared file system, a line lands in the log when the
 * file server gets it, so a copy's line after another copy's first line is a
 * write that arrived after that copy had started.
 */
export function overlapsIn(
  log: string,
  by: 'time' | 'order' = 'time',
): { overlaps: Overlap[]; copies: number } {
  const spans = new Map<string, Map<string, { start: number; end: number }>>();
  let index = 0;
  for (const line of log.split('\n')) {
    const m = /^w (\S+) (\d+) (\d+) (\S+)(?: \d+)?$/.exec(line);
    if (!m) continue;
    const [, node, pid, us, target] = m;
    const copy = `${node}/${pid}`;
    const t = by === 'time' ? Number(us) / 1000 : index++;
    const byCopy = spans.get(target!) ?? new Map<string, { start: number; end: number }>();
    spans.set(target!, byCopy);
    const s = byCopy.get(copy);
    if (!s) byCopy.set(copy, { start: t, end: t });
    else {
      s.start = Math.min(s.start, t);
      s.end = Math.max(s.end, t);
    }
  }
  const overlaps: Overlap[] = [];
  let copies = 0;
  for (const [target, byCopy] of spans) {
    const list = [...byCopy.entries()].sort((x, y) => x[1].start - y[1].start);
    copies += list.length;
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) {
        const [a, sa] = list[i]!;
        const [b, sb] = list[j]!;
        const ms = Math.min(sa.end, sb.end) - Math.max(sa.start, sb.start);
        if (ms >= 0) overlaps.push({ target, a, b, ms });
      }
    }
  }
  return { overlaps, copies };
}

const readText = (path: string): string => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
};

export interface FaultOptions {
  /** A fresh, empty directory for the build. */
  dir: string;
  heartbeatTimeoutMs: number;
}

/**
 * One build under one fault, on two fresh loopback agents of two slots
 * (stopped afterwards): four targets, each written in STEPS steps.
 */
export async function runFault(fault: Fault, opts: FaultOptions): Promise<FaultRun> {
  const { dir } = opts;
  const sleep = `0.2${Math.floor(Math.random() * 9000 + 1000)}`;
  writeFileSync(join(dir, 'Makefile'), oneWriterMakefile(sleep));
  const agents: LocalAgent[] = [];
  try {
    for (let i = 0; i < 2; i++)
      agents.push(await spawnLocalAgent({ slots: 2, id: `ow-${i}`, env: cleanEnv() }));
    const victim = agents[0]!;
    const args = [
      `--mp-hosts=${agents.map((a) => a.hostSpec).join(' ')}`,
      `--mp-heartbeat-timeout=${opts.heartbeatTimeoutMs}`,
      '--mp-quiet',
      `--mp-report=${join(dir, 'report.json')}`,
      '-j4',
    ];
    let clientPid = 0;
    const build = runMpmake(args, {
      cwd: dir,
      env: cleanEnv(),
      onSpawn: (c) => (clientPid = c.pid ?? 0),
      timeoutMs: 120_000,
    });
    const writesBy = (node: string): number =>
      readText(join(dir, 'writes.log'))
        .split('\n')
        .filter((l) => l.startsWith(`w ${node} `)).length;
    const ready =
      fault === 'stop-agent' || fault === 'kill-agent'
        ? () => writesBy(victim.id) >= 4 && writesBy(agents[1]!.id) >= 2
        : () => writesBy(victim.id) + writesBy(agents[1]!.id) >= 8;
    if (!(await eventually(ready, 60_000))) {
      const r = await build;
      throw new Error(`the build never got going on both agents; mpmake: ${r.stderr.toString()}`);
    }
    const faultAt = Date.now();
    let result: RunResult;
    let stderr = '';
    switch (fault) {
      case 'stop-agent':
        tryKill(victim.pid, 'SIGSTOP');
        result = await build;
        tryKill(victim.pid, 'SIGCONT');
        break;
      case 'kill-agent':
        tryKill(victim.pid, 'SIGKILL');
        result = await build;
        break;
      case 'stop-client':
        tryKill(clientPid, 'SIGSTOP');
        await new Promise((r) => setTimeout(r, opts.heartbeatTimeoutMs * 2));
        tryKill(clientPid, 'SIGCONT');
        result = await build;
        break;
      case 'kill-client': {
        tryKill(clientPid, 'SIGKILL');
        const first = await build;
        stderr = first.stderr.toString();
        // At once, as a user pressing up-arrow and enter would.
        result = await runMpmake(args, { cwd: dir, env: cleanEnv(), timeoutMs: 120_000 });
        break;
      }
    }
    stderr += result.stderr.toString();
    const afterFaultMs = Date.now() - faultAt;
    const { overlaps, copies } = overlapsIn(readText(join(dir, 'writes.log')));
    const want = wholeTarget();
    const incomplete: string[] = [];
    for (let i = 0; i < TARGETS; i++)
      if (readText(join(dir, `t${i}`)) !== want) incomplete.push(`t${i}`);
    const expected = new Set(['Makefile', 'writes.log', 'report.json']);
    for (let i = 0; i < TARGETS; i++) expected.add(`t${i}`);
    const leftovers = readdirSync(dir).filter((f) => !expected.has(f));
    await eventually(() => sleepers(sleep).length === 0, 5000);
    return {
      fault,
      code: result.code,
      stderr,
      overlaps,
      copies,
      incomplete,
      leftovers,
      strays: sleepers(sleep).length,
      afterFaultMs,
      report: JSON.parse(readText(join(dir, 'report.json')) || '{}') as FaultRun['report'],
    };
  } finally {
    for (const a of agents) tryKill(a.pid, 'SIGCONT');
    await Promise.all(agents.map((a) => a.stop().catch(() => {})));
  }
}
