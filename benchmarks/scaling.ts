/**
 * How a latency-bound build scales with the cluster: the sleep tree
 * (U × `sleep S`) built by `mpmake -jN` on 1, 2, 4, 8 loopback agents of
 * K slots each (N = agents × K), against the ideal ceil(U / N) × S, with
 * plain `make -jN` (all on this machine) beside it as the floor that make
 * alone costs.
 *
 *   node dist/benchmarks/scaling.js [--agents 1,2,4,8] [--slots 4] [--units 64]
 *        [--sleep 0.5] [--runs 3]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LocalAgent } from '../lib/agent/spawn-agent.js';
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
  startAgents,
  stopAgents,
  takeListOption,
  verdict,
  publishResults,
  type Finished,
} from './common.js';

export interface ScalingOptions {
  agents: number[];
  slots: number;
  units: number;
  sleep: number;
  runs: number;
}

/** Wall time at the largest cluster within 15 % of ideal. */
export const SCALING_TARGETS = { ratioAtLargest: 1.15 };

export const SCALING_DEFAULTS: ScalingOptions = {
  agents: [1, 2, 4, 8],
  slots: 4,
  units: 64,
  sleep: 0.5,
  runs: 3,
};

export async function runScaling(options: ScalingOptions): Promise<unknown> {
  const { slots, units, sleep, runs } = options;
  const loadBefore = loadavg()[0]!;
  const dir = mkdtempSync(join(tmpdir(), 'mpmake-bench-scaling-'));
  generateTree('sleep', dir, { units, sleepSeconds: sleep });
  let agents: LocalAgent[] = [];
  try {
    agents = await startAgents(Math.max(...options.agents), slots, 'bench-scaling');
    const one = async (file: string, args: string[]): Promise<Finished> => {
      execFileSync('make', ['-s', 'clean'], { cwd: dir, stdio: 'ignore' });
      const f = await launch(file, args, dir).done;
      if (f.code !== 0)
        throw new Error(`${file} ${args.join(' ')} failed (${f.code}): ${f.stderr}`);
      return f;
    };
    const mp = (n: number): Promise<Finished> =>
      one(process.execPath, [
        mpmakeCli,
        '--mp-quiet',
        `--mp-hosts=${hostList(agents.slice(0, n))}`,
        `-j${n * slots}`,
      ]);
    const mk = (n: number): Promise<Finished> => one('make', [`-j${n * slots}`]);
    await mp(1);
    await mk(1);
    const samples: Record<number, { mpmake: number[]; make: number[] }> = {};
    for (const n of options.agents) samples[n] = { mpmake: [], make: [] };
    for (let round = 0; round < runs; round++) {
      for (const n of options.agents) {
        const a = (await mp(n)).wallMs;
        const b = (await mk(n)).wallMs;
        samples[n]!.mpmake.push(a);
        samples[n]!.make.push(b);
        process.stderr.write(
          `scaling: round ${round + 1}/${runs} ${n} agent(s) -j${n * slots}: ` +
            `mpmake ${fmt(a / 1000)} s, make ${fmt(b / 1000)} s\n`,
        );
      }
    }
    const idealMs = (n: number): number => Math.ceil(units / (n * slots)) * sleep * 1000;
    const summary = Object.fromEntries(
      options.agents.map((n) => {
        const mpmakeMs = median(samples[n]!.mpmake);
        const makeMs = median(samples[n]!.make);
        return [
          n,
          {
            slots: n * slots,
            idealMs: idealMs(n),
            mpmakeMs,
            makeMs,
            ratio: mpmakeMs / idealMs(n),
            makeRatio: makeMs / idealMs(n),
            speedup: median(samples[options.agents[0]!]!.mpmake) / mpmakeMs,
          },
        ];
      }),
    ) as Record<
      number,
      {
        slots: number;
        idealMs: number;
        mpmakeMs: number;
        makeMs: number;
        ratio: number;
        makeRatio: number;
        speedup: number;
      }
    >;
    const largest = summary[Math.max(...options.agents)]!;
    const ok = largest.ratio <= SCALING_TARGETS.ratioAtLargest;
    const json = {
      benchmark: 'scaling',
      date: new Date().toISOString(),
      machine: machine(),
      loadavg1Before: loadBefore,
      options,
      targets: SCALING_TARGETS,
      summary,
      samples,
    };
    const m = json.machine;
    const md =
      `# scaling: ${units} × sleep ${sleep} on 1…${Math.max(...options.agents)} loopback agents × ${slots} slots\n\n` +
      `-j = total slots; ideal = ceil(${units} / slots) × ${sleep} s. Medians of ${runs} interleaved ` +
      `runs, wall time from spawn to exit, on ${m.cpus} CPUs (${m.cpuModel}), ${m.make}, Node ${m.node}; ` +
      `load average ${fmt(loadBefore)} before.\n\n` +
      markdownTable(
        [
          'agents',
          'slots',
          'ideal s',
          'mpmake s',
          'mpmake / ideal',
          'speed-up vs 1 agent',
          'make -jN s (local)',
          'make / ideal',
        ],
        options.agents.map((n) => {
          const p = summary[n]!;
          return [
            n,
            p.slots,
            fmt(p.idealMs / 1000),
            fmt(p.mpmakeMs / 1000),
            fmt(p.ratio),
            fmt(p.speedup),
            fmt(p.makeMs / 1000),
            fmt(p.makeRatio),
          ];
        }),
      ) +
      `\nTarget: within ${Math.round((SCALING_TARGETS.ratioAtLargest - 1) * 100)} % of ideal at ` +
      `${largest.slots} slots (measured ${fmt(largest.ratio)} × ideal, ${verdict(ok)}).\n`;
    await publishResults('scaling', json, md);
    return json;
  } finally {
    await stopAgents(agents);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  try {
    const argv = process.argv.slice(2);
    const agents = takeListOption(argv, 'agents');
    const o = numberOptions(argv, ['slots', 'units', 'sleep', 'runs']);
    const d = SCALING_DEFAULTS;
    await runScaling({
      agents: agents ?? d.agents,
      slots: o['slots'] ?? d.slots,
      units: o['units'] ?? d.units,
      sleep: o['sleep'] ?? d.sleep,
      runs: o['runs'] ?? d.runs,
    });
  } catch (err) {
    process.stderr.write(`scaling: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
