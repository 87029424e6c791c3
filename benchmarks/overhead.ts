/**
 * What mpmake costs per recipe line, on the worst case for it: recipes that
 * do nothing (`@: > $@`), so every millisecond is overhead.
 *
 *   node dist/benchmarks/overhead.js [--recipes 400] [--jobs 8] [--runs 5]
 *
 * Variants, interleaved A B C A B C:
 *   make            plain `make -jJ`
 *   mpmake-remote   `mpmake -jJ --mp-local=` (every line goes to the agent)
 *   mpmake-default  `mpmake -jJ` with the default local list
 * One loopback agent with J slots. Client CPU = mpmake + make + shims (all
 * waited-for descendants of the measured command); the agent's CPU (with its
 * jobs' shells) is read from /proc and reported separately.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnLocalAgent } from '../lib/agent/spawn-agent.js';
import { generateTree } from '../fixtures/gen-tree.js';
import {
  benchEnv,
  fmt,
  interleave,
  isMain,
  machine,
  markdownTable,
  measure,
  median,
  mpmakeCli,
  numberOptions,
  processCpuMs,
  publishResults,
  type Measured,
} from './common.js';

export interface OverheadOptions {
  recipes: number;
  jobs: number;
  runs: number;
}

export const OVERHEAD_TARGETS = { wallRatio: 2.0, clientCpuMsPerRecipe: 5 };

interface Sample extends Measured {
  agentCpuMs: number;
  remoteJobs: number | undefined;
}

type Variant = 'make' | 'mpmake-remote' | 'mpmake-default';

export async function runOverhead(options: OverheadOptions): Promise<unknown> {
  const { recipes, jobs, runs } = options;
  const dir = mkdtempSync(join(tmpdir(), 'mpmake-bench-overhead-'));
  const reportDir = mkdtempSync(join(tmpdir(), 'mpmake-bench-report-'));
  const reportFile = join(reportDir, 'report.json');
  generateTree('trivial', dir, { units: recipes });
  const agent = await spawnLocalAgent({ slots: jobs, id: 'bench-agent', env: benchEnv() });
  try {
    const clean = (): Promise<Measured> => measure('make', ['-s', 'clean'], dir);
    const sample = async (file: string, args: string[], isMpmake: boolean): Promise<Sample> => {
      await clean();
      rmSync(reportFile, { force: true });
      const before = processCpuMs(agent.pid);
      const m = await measure(file, args, dir);
      const agentCpuMs = processCpuMs(agent.pid) - before;
      if (m.code !== 0)
        throw new Error(`${file} ${args.join(' ')} failed (${m.code}): ${m.stderr}`);
      let remoteJobs: number | undefined;
      if (isMpmake) {
        const report = JSON.parse(readFileSync(reportFile, 'utf8')) as { jobs: { remote: number } };
        remoteJobs = report.jobs.remote;
      }
      return { ...m, agentCpuMs, remoteJobs };
    };
    const mp = (extra: string[]): string[] => [
      mpmakeCli,
      '--mp-quiet',
      `--mp-hosts=${agent.hostSpec}`,
      `--mp-report=${reportFile}`,
      ...extra,
      `-j${jobs}`,
    ];
    const variants: Record<Variant, () => Promise<Sample>> = {
      make: () => sample('make', [`-j${jobs}`], false),
      'mpmake-remote': () => sample(process.execPath, mp(['--mp-local=']), true),
      'mpmake-default': () => sample(process.execPath, mp([]), true),
    };
    // One untimed warm-up of each, so caches and the agent's JIT are warm for all.
    for (const v of Object.values(variants)) await v();
    const results = await interleave(runs, variants, (v, round, r) =>
      process.stderr.write(
        `overhead: round ${round + 1}/${runs} ${v}: ${fmt(r.wallMs, 0)} ms wall, ` +
          `${fmt(r.cpuMs, 0)} ms client CPU, ${fmt(r.agentCpuMs, 0)} ms agent CPU\n`,
      ),
    );

    const summary = Object.fromEntries(
      (Object.keys(results) as Variant[]).map((v) => {
        const rs = results[v];
        const wallMs = median(rs.map((r) => r.wallMs));
        const clientCpuMs = median(rs.map((r) => r.cpuMs));
        const agentCpuMs = median(rs.map((r) => r.agentCpuMs));
        const remote = rs.map((r) => r.remoteJobs).filter((n): n is number => n !== undefined);
        return [
          v,
          {
            wallMs,
            clientCpuMs,
            clientCpuMsPerRecipe: clientCpuMs / recipes,
            agentCpuMs,
            agentCpuMsPerRecipe: agentCpuMs / recipes,
            remoteJobs: remote.length ? median(remote) : undefined,
          },
        ];
      }),
    ) as Record<
      Variant,
      {
        wallMs: number;
        clientCpuMs: number;
        clientCpuMsPerRecipe: number;
        agentCpuMs: number;
        agentCpuMsPerRecipe: number;
        remoteJobs?: number;
      }
    >;
    const base = summary.make.wallMs;
    const ratios = {
      'mpmake-remote': summary['mpmake-remote'].wallMs / base,
      'mpmake-default': summary['mpmake-default'].wallMs / base,
    };
    const verdict = (ok: boolean): string => (ok ? 'meets target' : 'MISSES target');
    const remote = summary['mpmake-remote'];
    const json = {
      benchmark: 'overhead',
      date: new Date().toISOString(),
      machine: machine(),
      options,
      targets: OVERHEAD_TARGETS,
      summary,
      wallRatio: ratios,
      samples: results,
    };
    const rows = (['make', 'mpmake-remote', 'mpmake-default'] as Variant[]).map((v) => [
      v,
      fmt(summary[v].wallMs, 0),
      v === 'make' ? '1.00' : fmt(ratios[v], 2),
      fmt(summary[v].clientCpuMsPerRecipe, 2),
      v === 'make' ? '-' : fmt(summary[v].agentCpuMsPerRecipe, 2),
      summary[v].remoteJobs ?? '-',
    ]);
    const md =
      `# overhead: ${recipes} trivial recipes, -j${jobs}, one loopback agent (${jobs} slots)\n\n` +
      `Medians of ${runs} interleaved runs on ${json.machine.cpus} CPUs (${json.machine.cpuModel}), ` +
      `${json.machine.make}, Node ${json.machine.node}.\n\n` +
      markdownTable(
        [
          'variant',
          'wall ms',
          'wall ratio',
          'client CPU ms/recipe',
          'agent CPU ms/recipe',
          'remote jobs',
        ],
        rows,
      ) +
      `\nTargets: wall ratio ≤ ${OVERHEAD_TARGETS.wallRatio} (mpmake-remote: ${fmt(ratios['mpmake-remote'])}, ` +
      `${verdict(ratios['mpmake-remote'] <= OVERHEAD_TARGETS.wallRatio)}); ` +
      `client CPU ≤ ${OVERHEAD_TARGETS.clientCpuMsPerRecipe} ms/recipe ` +
      `(mpmake-remote: ${fmt(remote.clientCpuMsPerRecipe)}, ` +
      `${verdict(remote.clientCpuMsPerRecipe <= OVERHEAD_TARGETS.clientCpuMsPerRecipe)}).\n`;
    await publishResults('overhead', json, md);
    return json;
  } finally {
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(reportDir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  try {
    const o = numberOptions(process.argv.slice(2), ['recipes', 'jobs', 'runs']);
    await runOverhead({ recipes: o['recipes'] ?? 400, jobs: o['jobs'] ?? 8, runs: o['runs'] ?? 5 });
  } catch (err) {
    process.stderr.write(`overhead: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
