/**
 * Jobs per second through one coordinator: N trivial recipes (`@: > $@`),
 * every line sent to the agents (`--mp-local=`), on A loopback agents × K
 * slots at -jA·K; and the client's CPU per job (mpmake + make + shims).
 * Plain `make -jA·K` runs beside it as the rate of make alone.
 *
 *   node dist/benchmarks/throughput.js [--jobs 2000] [--agents 2] [--slots 8] [--runs 3]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LocalAgent } from '../lib/agent/spawn-agent.js';
import { generateTree } from '../fixtures/gen-tree.js';
import {
  fmt,
  hostList,
  interleave,
  isMain,
  machine,
  markdownTable,
  measure,
  median,
  mpmakeCli,
  numberOptions,
  processCpuMs,
  startAgents,
  stopAgents,
  publishResults,
  type Measured,
} from './common.js';

export interface ThroughputOptions {
  jobs: number;
  agents: number;
  slots: number;
  runs: number;
}

export const THROUGHPUT_DEFAULTS: ThroughputOptions = { jobs: 2000, agents: 2, slots: 8, runs: 3 };

interface Sample extends Measured {
  agentCpuMs: number;
  remoteJobs: number | undefined;
}

export async function runThroughput(options: ThroughputOptions): Promise<unknown> {
  const { jobs, runs } = options;
  const j = options.agents * options.slots;
  const loadBefore = loadavg()[0]!;
  const dir = mkdtempSync(join(tmpdir(), 'mpmake-bench-throughput-'));
  const reportDir = mkdtempSync(join(tmpdir(), 'mpmake-bench-report-'));
  const reportFile = join(reportDir, 'report.json');
  generateTree('trivial', dir, { units: jobs });
  let agents: LocalAgent[] = [];
  try {
    agents = await startAgents(options.agents, options.slots, 'bench-tput');
    const agentCpu = (): number => agents.reduce((s, a) => s + processCpuMs(a.pid), 0);
    const sample = async (file: string, args: string[], isMpmake: boolean): Promise<Sample> => {
      await measure('make', ['-s', 'clean'], dir);
      rmSync(reportFile, { force: true });
      const before = agentCpu();
      const m = await measure(file, args, dir);
      const agentCpuMs = agentCpu() - before;
      if (m.code !== 0)
        throw new Error(`${file} ${args.join(' ')} failed (${m.code}): ${m.stderr}`);
      let remoteJobs: number | undefined;
      if (isMpmake) {
        const report = JSON.parse(readFileSync(reportFile, 'utf8')) as { jobs: { remote: number } };
        remoteJobs = report.jobs.remote;
        if (remoteJobs !== jobs) throw new Error(`only ${remoteJobs} of ${jobs} jobs ran remotely`);
      }
      return { ...m, agentCpuMs, remoteJobs };
    };
    const variants = {
      mpmake: () =>
        sample(
          process.execPath,
          [
            mpmakeCli,
            '--mp-quiet',
            '--mp-local=',
            `--mp-hosts=${hostList(agents)}`,
            `--mp-report=${reportFile}`,
            `-j${j}`,
          ],
          true,
        ),
      make: () => sample('make', [`-j${j}`], false),
    };
    for (const v of Object.values(variants)) await v();
    const results = await interleave(runs, variants, (v, round, r) =>
      process.stderr.write(
        `throughput: round ${round + 1}/${runs} ${v}: ${fmt(r.wallMs / 1000)} s, ` +
          `${fmt(jobs / (r.wallMs / 1000), 0)} jobs/s, ${fmt(r.cpuMs / jobs)} ms client CPU/job, ` +
          `${fmt(r.agentCpuMs / jobs)} ms agent CPU/job\n`,
      ),
    );
    const sum = (rs: Sample[]): Record<string, number> => {
      const wallMs = median(rs.map((r) => r.wallMs));
      return {
        wallMs,
        jobsPerS: jobs / (wallMs / 1000),
        clientCpuMsPerJob: median(rs.map((r) => r.cpuMs)) / jobs,
        agentCpuMsPerJob: median(rs.map((r) => r.agentCpuMs)) / jobs,
      };
    };
    const summary = { mpmake: sum(results.mpmake), make: sum(results.make) };
    const json = {
      benchmark: 'throughput',
      date: new Date().toISOString(),
      machine: machine(),
      loadavg1Before: loadBefore,
      options,
      summary,
      samples: results,
    };
    const mm = json.machine;
    const md =
      `# throughput: ${jobs} trivial recipes, all remote (--mp-local=), -j${j}, ` +
      `${options.agents} loopback agents × ${options.slots} slots\n\n` +
      `Medians of ${runs} interleaved runs on ${mm.cpus} CPUs (${mm.cpuModel}), ${mm.make}, ` +
      `Node ${mm.node}; load average ${fmt(loadBefore)} before. Client CPU = mpmake + make + shims; ` +
      `agent CPU includes the jobs' shells.\n\n` +
      markdownTable(
        ['variant', 'wall s', 'jobs/s', 'client CPU ms/job', 'agent CPU ms/job'],
        (['mpmake', 'make'] as const).map((v) => [
          v === 'make' ? `make -j${j} (local)` : `mpmake -j${j}`,
          fmt(summary[v].wallMs! / 1000),
          fmt(summary[v].jobsPerS!, 0),
          fmt(summary[v].clientCpuMsPerJob!),
          v === 'make' ? '-' : fmt(summary[v].agentCpuMsPerJob!),
        ]),
      ) +
      `\nEverything shares this machine's ${mm.cpus} cores, so jobs/s is bounded by the CPU ` +
      `per job of client and agents together: ` +
      `${fmt(summary.mpmake.clientCpuMsPerJob! + summary.mpmake.agentCpuMsPerJob!)} ms/job ` +
      `→ at most ${fmt((mm.cpus * 1000) / (summary.mpmake.clientCpuMsPerJob! + summary.mpmake.agentCpuMsPerJob!), 0)} jobs/s here; ` +
      `with agents on other machines the client alone allows ${fmt((mm.cpus * 1000) / summary.mpmake.clientCpuMsPerJob!, 0)}.\n`;
    await publishResults('throughput', json, md);
    return json;
  } finally {
    await stopAgents(agents);
    rmSync(dir, { recursive: true, force: true });
    rmSync(reportDir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  try {
    const o = numberOptions(process.argv.slice(2), ['jobs', 'agents', 'slots', 'runs']);
    const d = THROUGHPUT_DEFAULTS;
    await runThroughput({
      jobs: o['jobs'] ?? d.jobs,
      agents: o['agents'] ?? d.agents,
      slots: o['slots'] ?? d.slots,
      runs: o['runs'] ?? d.runs,
    });
  } catch (err) {
    process.stderr.write(`throughput: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
