/**
 * What a node's revalidation of a job's inputs (files another machine wrote
 * in this build: nearly every job on a cluster of two or more nodes) adds
 * to the job's start, as found and under added load. Jobs run through the agent's
 * own job object (lib/agent/remote-job.ts, as agent-session.ts makes them),
 * one at a time, `true` as the recipe; each job's time is from its start
 * (it got a slot) to its exit message. The inputs are fresh files here, so
 * every look succeeds at once: the difference is the machinery's cost, not
 * a file system's lag.
 *
 *   node dist/benchmarks/input-revalidate.js [--jobs 40] [--runs 3] [--inputs 3] [--hogs 4]
 *
 * Variants, interleaved per round: `no-inputs` and `inputs` (the job lists
 * --inputs files). Conditions: the machine as found, and loaded (--hogs busy shell loops,
 * started and stopped by pid). Target: inputs add at most
 * INPUT_REVALIDATE_TARGET_MS to a job's p50, in both.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seeFile } from '../lib/agent/file-seen.js';
import { RemoteJob } from '../lib/agent/remote-job.js';
import { closeSharedSpawner } from '../lib/agent/spawn-client.js';
import type { ExitMessage, FileSeen, JobMessage } from '../lib/protocol/messages.js';
import {
  delay,
  fmt,
  interleave,
  isMain,
  machine,
  markdownTable,
  median,
  numberOptions,
  publishResults,
  verdict,
} from './common.js';

export interface InputRevalidateOptions {
  jobs: number;
  runs: number;
  inputs: number;
  hogs: number;
}

export const INPUT_REVALIDATE_DEFAULTS: InputRevalidateOptions = {
  jobs: 40,
  runs: 3,
  inputs: 3,
  hogs: 4,
};

/** What revalidating a job's inputs may add to its start (p50), with or without added load. */
export const INPUT_REVALIDATE_TARGET_MS = 5;

type Variant = 'no-inputs' | 'inputs';

interface JobTime {
  ms: number;
  lagMs: number | undefined;
}

/** Runs one job through a RemoteJob; resolves with its start-to-exit time. */
function runJob(id: number, cwd: string, inputs: FileSeen[] | undefined): Promise<JobTime> {
  const message: JobMessage = {
    type: 'job',
    id,
    argv: ['true'],
    cwd,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
    umask: 0o022,
    ...(inputs ? { inputs, fsWaitMs: 2000 } : {}),
  };
  return new Promise((resolve, reject) => {
    let exit: ExitMessage | undefined;
    const t0 = performance.now();
    const job = new RemoteJob(
      message,
      {
        send: (m) => {
          if (m.type === 'exit') exit = m;
          else if (m.type === 'data') process.stderr.write(m.bytes);
        },
      },
      () => {},
      () => {
        const ms = performance.now() - t0;
        if (exit?.code !== 0) reject(new Error(`job ${id} failed: ${JSON.stringify(exit)}`));
        else resolve({ ms, lagMs: exit.inputWait?.lagMs });
      },
    );
    job.start();
  });
}

function busyLoops(n: number): ChildProcess[] {
  return Array.from({ length: n }, () =>
    spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' }),
  );
}

function p(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

export async function runInputRevalidate(options: InputRevalidateOptions): Promise<unknown> {
  const { jobs, runs, hogs } = options;
  const dir = mkdtempSync(join(tmpdir(), 'mpmake-bench-inputs-'));
  let nextId = 1;
  try {
    const files: FileSeen[] = [];
    for (let i = 0; i < options.inputs; i++) {
      const f = join(dir, `in${i}.h`);
      writeFileSync(f, `#define IN${i} ${i}\n`);
      files.push(await seeFile(f));
    }
    const batch = async (inputs: FileSeen[] | undefined): Promise<JobTime[]> => {
      const out: JobTime[] = [];
      for (let i = 0; i < jobs; i++) out.push(await runJob(nextId++, dir, inputs));
      return out;
    };
    const variants: Record<Variant, () => Promise<JobTime[]>> = {
      'no-inputs': () => batch(undefined),
      inputs: () => batch(files),
    };
    await batch(files); // warm-up: the spawner, the page cache
    const conditions: Record<string, Record<Variant, JobTime[]>> = {};
    for (const condition of ['as found', 'loaded'] as const) {
      const loops = condition === 'loaded' ? busyLoops(hogs) : [];
      try {
        if (loops.length) await delay(300);
        const got = await interleave(runs, variants);
        conditions[condition] = {
          'no-inputs': got['no-inputs'].flat(),
          inputs: got.inputs.flat(),
        };
      } finally {
        for (const l of loops) if (l.pid !== undefined) process.kill(l.pid, 'SIGKILL');
      }
    }
    const rows: (string | number)[][] = [];
    const summary: Record<string, unknown> = {};
    for (const [condition, r] of Object.entries(conditions)) {
      const base = r['no-inputs'].map((j) => j.ms);
      const withIn = r.inputs.map((j) => j.ms);
      const lags = r.inputs.flatMap((j) => (j.lagMs === undefined ? [] : [j.lagMs]));
      const added = median(withIn) - median(base);
      summary[condition] = {
        noInputsP50Ms: median(base),
        noInputsP90Ms: p(base, 0.9),
        inputsP50Ms: median(withIn),
        inputsP90Ms: p(withIn, 0.9),
        addedP50Ms: added,
        reportedLagP50Ms: lags.length ? median(lags) : undefined,
        met: added <= INPUT_REVALIDATE_TARGET_MS,
      };
      rows.push([
        condition,
        fmt(median(base)),
        fmt(p(base, 0.9)),
        fmt(median(withIn)),
        fmt(p(withIn, 0.9)),
        fmt(added),
        lags.length ? fmt(median(lags)) : '-',
        `${verdict(added <= INPUT_REVALIDATE_TARGET_MS)} (≤ ${INPUT_REVALIDATE_TARGET_MS} ms)`,
      ]);
    }
    const m = machine();
    const markdown =
      `# Revalidating a job's inputs on its node: per-job cost\n\n` +
      `${jobs} jobs (\`true\`) per variant per round, ${runs} rounds interleaved, ` +
      `${options.inputs} input files each; loaded = ${hogs} busy loops. ` +
      `${m.cpus} CPUs, 1-minute load ${m.loadavg1} at the end.\n\n` +
      markdownTable(
        [
          'condition',
          'no inputs p50 ms',
          'p90',
          'inputs p50 ms',
          'p90',
          'added p50 ms',
          'reported lag p50 ms',
          'target',
        ],
        rows,
      );
    const json = { options, machine: m, summary, samples: conditions };
    await publishResults('input-revalidate', json, markdown);
    return json;
  } finally {
    closeSharedSpawner();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  const o = numberOptions(process.argv.slice(2), ['jobs', 'runs', 'inputs', 'hogs']);
  await runInputRevalidate({ ...INPUT_REVALIDATE_DEFAULTS, ...o });
}
