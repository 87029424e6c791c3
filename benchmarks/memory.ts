/**
 * Peak memory of the coordinator (the mpmake node process) and the agents
 * (their node processes), from /proc/PID/status VmRSS sampled every 50 ms:
 *
 *   many jobs   N trivial recipes, every line remote (`--mp-local=`), -j16
 *               on 2 loopback agents × 8 slots
 *   streaming   one recipe writing B bytes to stdout (`head -c B /dev/zero`),
 *               mpmake's stdout to /dev/null; with the streaming rate
 *               (bytes over the job's run time) beside a plain pipe's rate
 *
 *   node dist/benchmarks/memory.js [--jobs 5000] [--stream-mib 1024] [--runs 1]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  nowMs,
  readReport,
  readRss,
  sampleRss,
  startAgents,
  stopAgents,
  verdict,
  publishResults,
  type RssPeak,
} from './common.js';

export interface MemoryOptions {
  jobs: number;
  streamMib: number;
  runs: number;
}

export const MEMORY_DEFAULTS: MemoryOptions = { jobs: 5000, streamMib: 1024, runs: 1 };
export const MEMORY_TARGETS = { coordinatorMb: 100, agentMb: 100 };

const AGENTS = 2;
const SLOTS = 8;

interface RunMemory {
  wallMs: number;
  /** Peaks by process: coordinator, agent-0, agent-1. */
  peaks: Record<string, RssPeak>;
  /** The job's own run time (streaming), from the trace. */
  jobRunMs?: number;
}

const mb = (kb: number): number => kb / 1024;

/** Run time of the one job in a trace written by --mp-trace. */
function jobRunMs(tracePath: string): number | undefined {
  try {
    const t = JSON.parse(readFileSync(tracePath, 'utf8')) as
      { traceEvents: { ph: string; dur?: number }[] } | { ph: string; dur?: number }[];
    const events = Array.isArray(t) ? t : t.traceEvents;
    const job = events.find((e) => e.ph === 'X');
    return job?.dur !== undefined ? job.dur / 1000 : undefined;
  } catch {
    return undefined;
  }
}

export async function runMemory(options: MemoryOptions): Promise<unknown> {
  const { jobs, streamMib, runs } = options;
  const streamBytes = streamMib * 1024 * 1024;
  const loadBefore = loadavg()[0]!;
  const base = mkdtempSync(join(tmpdir(), 'mpmake-bench-memory-'));
  const trivialDir = join(base, 'trivial');
  const streamDir = join(base, 'stream');
  generateTree('trivial', trivialDir, { units: jobs });
  execFileSync('mkdir', ['-p', streamDir]);
  writeFileSync(
    join(streamDir, 'Makefile'),
    `# One recipe streaming ${streamBytes} bytes to stdout.\nall:\n\thead -c ${streamBytes} /dev/zero\n\nclean:\n\n.PHONY: all clean\n`,
  );
  const tracePath = join(base, 'trace.json');
  const reportPath = join(base, 'report.json');
  let agents: LocalAgent[] = [];
  try {
    agents = await startAgents(AGENTS, SLOTS, 'bench-mem');
    const idle = Object.fromEntries(
      agents.map((a, i) => [`agent-${i}`, mb(readRss(a.pid)?.rssKb ?? NaN)]),
    );
    const build = async (dir: string, extra: string[]): Promise<RunMemory> => {
      execFileSync('make', ['-s', 'clean'], { cwd: dir, stdio: 'ignore' });
      rmSync(tracePath, { force: true });
      rmSync(reportPath, { force: true });
      const l = launch(
        process.execPath,
        [
          mpmakeCli,
          '--mp-quiet',
          '--mp-local=',
          `--mp-hosts=${hostList(agents)}`,
          `--mp-report=${reportPath}`,
          ...extra,
        ],
        dir,
      );
      const sampler = sampleRss({
        coordinator: l.pid,
        ...Object.fromEntries(agents.map((a, i) => [`agent-${i}`, a.pid])),
      });
      const f = await l.done;
      const peaks = sampler.stop();
      if (f.code !== 0) throw new Error(`mpmake in ${dir} failed (${f.code}): ${f.stderr}`);
      const report = readReport(reportPath);
      if (report && report.jobs.remote !== report.jobs.total) {
        throw new Error(`only ${report.jobs.remote} of ${report.jobs.total} jobs ran remotely`);
      }
      return { wallMs: f.wallMs, peaks };
    };

    // The machine's own rate for the same bytes through one pipe, for scale.
    const pipeRate = (): number => {
      const t0 = nowMs();
      execFileSync('/bin/sh', ['-c', `head -c ${streamBytes} /dev/zero | cat > /dev/null`]);
      return streamBytes / ((nowMs() - t0) / 1000);
    };

    const many: RunMemory[] = [];
    const stream: RunMemory[] = [];
    const pipe: number[] = [];
    for (let r = 0; r < runs; r++) {
      const a = await build(trivialDir, [`-j${AGENTS * SLOTS}`]);
      many.push(a);
      process.stderr.write(
        `memory: round ${r + 1}/${runs} ${jobs} jobs: ${fmt(a.wallMs / 1000)} s; peak RSS ` +
          Object.entries(a.peaks)
            .map(([k, p]) => `${k} ${fmt(mb(p.peakRssKb), 1)} MB`)
            .join(', ') +
          '\n',
      );
      const b = await build(streamDir, ['-j1', `--mp-trace=${tracePath}`]);
      b.jobRunMs = jobRunMs(tracePath);
      stream.push(b);
      pipe.push(pipeRate());
      process.stderr.write(
        `memory: round ${r + 1}/${runs} stream ${streamMib} MiB: ${fmt(b.wallMs / 1000)} s ` +
          `(job ${fmt((b.jobRunMs ?? NaN) / 1000)} s); peak RSS ` +
          Object.entries(b.peaks)
            .map(([k, p]) => `${k} ${fmt(mb(p.peakRssKb), 1)} MB`)
            .join(', ') +
          `; a plain pipe: ${fmt(pipe[r]! / 2 ** 20, 0)} MiB/s\n`,
      );
    }
    const peakOf = (rs: RunMemory[], name: string): number =>
      Math.max(...rs.map((r) => mb(r.peaks[name]?.peakRssKb ?? 0)));
    const hwmOf = (rs: RunMemory[], name: string): number =>
      Math.max(...rs.map((r) => mb(r.peaks[name]?.hwmKb ?? 0)));
    const names = ['coordinator', ...agents.map((_, i) => `agent-${i}`)];
    const agentPeak = (rs: RunMemory[]): number =>
      Math.max(...names.slice(1).map((n) => peakOf(rs, n)));
    const streamRunMs = median(stream.map((s) => s.jobRunMs ?? s.wallMs));
    const summary = {
      manyJobs: {
        jobs,
        wallMs: median(many.map((r) => r.wallMs)),
        peakMb: Object.fromEntries(names.map((n) => [n, peakOf(many, n)])),
        hwmMb: Object.fromEntries(names.map((n) => [n, hwmOf(many, n)])),
      },
      stream: {
        bytes: streamBytes,
        wallMs: median(stream.map((r) => r.wallMs)),
        jobRunMs: streamRunMs,
        mibPerS: streamBytes / 2 ** 20 / (streamRunMs / 1000),
        pipeMibPerS: median(pipe) / 2 ** 20,
        peakMb: Object.fromEntries(names.map((n) => [n, peakOf(stream, n)])),
        hwmMb: Object.fromEntries(names.map((n) => [n, hwmOf(stream, n)])),
      },
      agentIdleMb: idle,
    };
    const checks = {
      manyCoordinatorOk: summary.manyJobs.peakMb['coordinator']! <= MEMORY_TARGETS.coordinatorMb,
      manyAgentOk: agentPeak(many) <= MEMORY_TARGETS.agentMb,
      streamCoordinatorOk: summary.stream.peakMb['coordinator']! <= MEMORY_TARGETS.coordinatorMb,
      streamAgentOk: agentPeak(stream) <= MEMORY_TARGETS.agentMb,
    };
    const json = {
      benchmark: 'memory',
      date: new Date().toISOString(),
      machine: machine(),
      loadavg1Before: loadBefore,
      options,
      targets: MEMORY_TARGETS,
      summary,
      checks,
      samples: { many, stream, pipeBytesPerS: pipe },
    };
    const mm = json.machine;
    const cell = (peak: number, hwm: number): string => `${fmt(peak, 1)} (${fmt(hwm, 1)})`;
    const row = (what: string, s: typeof summary.manyJobs | typeof summary.stream): string[] => [
      what,
      fmt(s.wallMs / 1000),
      ...names.map((n) => cell(s.peakMb[n]!, s.hwmMb[n]!)),
    ];
    const md =
      `# memory: peak RSS of coordinator and agents (${AGENTS} loopback agents × ${SLOTS} slots)\n\n` +
      `VmRSS sampled every 50 ms, in MB; in brackets the kernel's VmHWM. Largest of ${runs} run(s) ` +
      `on ${mm.cpus} CPUs (${mm.cpuModel}), Node ${mm.node}; load average ${fmt(loadBefore)} before. ` +
      `Idle agents: ${Object.values(idle)
        .map((v) => `${fmt(v, 1)} MB`)
        .join(', ')}.\n\n` +
      markdownTable(
        ['build', 'wall s', ...names.map((n) => `${n} MB`)],
        [
          row(`${jobs} trivial jobs, all remote, -j${AGENTS * SLOTS}`, summary.manyJobs),
          row(`one recipe streaming ${streamMib} MiB to stdout`, summary.stream),
        ],
      ) +
      `\nStreaming: ${fmt(summary.stream.mibPerS, 0)} MiB/s over the job's run time ` +
      `(${fmt(streamRunMs / 1000)} s); the same bytes through one local pipe: ` +
      `${fmt(summary.stream.pipeMibPerS, 0)} MiB/s.\n\n` +
      `Targets: ≤ ${MEMORY_TARGETS.coordinatorMb} MB each. ${jobs} jobs: coordinator ` +
      `${fmt(summary.manyJobs.peakMb['coordinator']!, 1)} MB (${verdict(checks.manyCoordinatorOk)}), ` +
      `agents ${fmt(agentPeak(many), 1)} MB (${verdict(checks.manyAgentOk)}); stream: coordinator ` +
      `${fmt(summary.stream.peakMb['coordinator']!, 1)} MB (${verdict(checks.streamCoordinatorOk)}), ` +
      `agents ${fmt(agentPeak(stream), 1)} MB (${verdict(checks.streamAgentOk)}).\n`;
    await publishResults('memory', json, md);
    return json;
  } finally {
    await stopAgents(agents);
    rmSync(base, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  try {
    const o = numberOptions(process.argv.slice(2), ['jobs', 'stream-mib', 'runs']);
    const d = MEMORY_DEFAULTS;
    await runMemory({
      jobs: o['jobs'] ?? d.jobs,
      streamMib: o['stream-mib'] ?? d.streamMib,
      runs: o['runs'] ?? d.runs,
    });
  } catch (err) {
    process.stderr.write(`memory: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
