/**
 * Issue 13's "done" measure: at most one copy of a job writes at any time.
 * Each fault (agent SIGSTOP, mpmake SIGSTOP, agent SIGKILL, mpmake SIGKILL
 * followed at once by a new build) is injected mid-build --reps times (20
 * by default) on fresh loopback agents, with a log of every write (see
 * test/helpers/one-writer.ts). Reports, per fault: overlapping writes (the
 * target is 0), builds that failed, targets left incomplete, files or job
 * processes left behind, and the time from the fault to the end of the
 * build. About 10 s per repetition: 20 of each take some 15 minutes.
 *
 *   node dist/benchmarks/one-writer.js [--reps 20] [--heartbeat-ms 2000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FAULTS, runFault, type Fault, type FaultRun } from '../test/helpers/one-writer.js';
import {
  fmt,
  isMain,
  machine,
  markdownTable,
  median,
  numberOptions,
  publishResults,
} from './common.js';

interface Row {
  fault: Fault;
  reps: number;
  overlaps: number;
  failedBuilds: number;
  incomplete: number;
  leftovers: number;
  strays: number;
  reruns: number;
  afterFaultMsMedian: number;
  afterFaultMsMax: number;
}

export async function runOneWriter(reps: number, heartbeatTimeoutMs: number): Promise<Row[]> {
  const rows: Row[] = [];
  for (const fault of FAULTS) {
    const runs: FaultRun[] = [];
    for (let i = 0; i < reps; i++) {
      const dir = mkdtempSync(join(tmpdir(), `mpmake-one-writer-${fault}-`));
      try {
        const r = await runFault(fault, { dir, heartbeatTimeoutMs });
        runs.push(r);
        process.stderr.write(
          `${fault} ${i + 1}/${reps}: exit ${r.code}, ${r.overlaps.length} overlaps, ` +
            `${r.copies} copies, ${(r.afterFaultMs / 1000).toFixed(1)} s\n`,
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    const after = runs.map((r) => r.afterFaultMs);
    rows.push({
      fault,
      reps,
      overlaps: runs.reduce((a, r) => a + r.overlaps.length, 0),
      failedBuilds: runs.filter((r) => r.code !== 0).length,
      incomplete: runs.reduce((a, r) => a + r.incomplete.length, 0),
      leftovers: runs.reduce((a, r) => a + r.leftovers.length, 0),
      strays: runs.reduce((a, r) => a + r.strays, 0),
      reruns: runs.reduce((a, r) => a + (r.report.jobs?.retried ?? 0), 0),
      afterFaultMsMedian: Math.round(median(after)),
      afterFaultMsMax: Math.round(Math.max(...after)),
    });
  }
  return rows;
}

if (isMain(import.meta.url)) {
  try {
    const o = numberOptions(process.argv.slice(2), ['reps', 'heartbeat-ms']);
    const reps = o['reps'] ?? 20;
    const heartbeatMs = o['heartbeat-ms'] ?? 2000;
    const rows = await runOneWriter(reps, heartbeatMs);
    const ok = rows.every((r) => r.overlaps === 0 && r.failedBuilds === 0 && r.incomplete === 0);
    const markdown =
      `# One writer at a time (issue 13)\n\n` +
      `${reps} repetition(s) of each fault, --mp-heartbeat-timeout=${heartbeatMs} ` +
      `(lease ${Math.floor(heartbeatMs * 0.75)} ms), two loopback agents of two slots, four ` +
      `targets written in eight steps each. Target: 0 overlapping writes, every build ` +
      `succeeds, every target whole — ${ok ? 'met' : 'MISSED'}` +
      `${reps < 20 ? ` (only ${reps} repetitions: the issue asks for 20)` : ''}.\n\n` +
      markdownTable(
        [
          'fault',
          'reps',
          'overlaps',
          'failed builds',
          'incomplete targets',
          'files left',
          'processes left',
          're-runs',
          'fault to end, median s',
          'max s',
        ],
        rows.map((r) => [
          r.fault,
          r.reps,
          r.overlaps,
          r.failedBuilds,
          r.incomplete,
          r.leftovers,
          r.strays,
          r.reruns,
          fmt(r.afterFaultMsMedian / 1000, 1),
          fmt(r.afterFaultMsMax / 1000, 1),
        ]),
      ) +
      '\n';
    await publishResults('one-writer', { machine: machine(), reps, heartbeatMs, rows }, markdown);
  } catch (err) {
    process.stderr.write(`one-writer: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
