/**
 * Issue 13's "done" measure: at most one copy of a job writes at any time.
 * Each fault (agent SIGSTOP, mpmake SIGSTOP, agent SIGKILL, mpmake SIGKILL
 * followed at once by a new build) is injected mid-build --reps times (20
 * by default) on fresh loopback agents, with a log of every write (see
 * test/helpers/one-writer.ts); as root, with the cluster test bed, also a
 * node's link cut (test/helpers/cut-link.ts), while its jobs pause between
 * writes (`cut-link`) and at any moment (`cut-link-any`). Reports, per
 * fault: overlapping writes (the target is 0), writes that reached the file
 * server after the re-run had begun (cut link), builds that failed, targets
 * left incomplete, files or job processes left behind, and the time from the
 * fault to the end of the build. About 10 s per repetition on loopback, 25 s
 * on the bed: 20 of each take some 30 minutes.
 *
 *   node dist/benchmarks/one-writer.js [--reps 20] [--heartbeat-ms 2000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bed, bedMissing } from '../test/helpers/cluster-bed.js';
import { runCutLink, type CutMoment } from '../test/helpers/cut-link.js';
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

type Kind = Fault | 'cut-link' | 'cut-link-any';

interface Row {
  fault: Kind;
  reps: number;
  overlaps: number;
  /** Cut link: writes of a copy that reached the file server after a later copy's first. */
  lateWrites: number;
  /** Repetitions the harness could not carry out (the message is printed). */
  harnessErrors: number;
  failedBuilds: number;
  incomplete: number;
  leftovers: number;
  strays: number;
  reruns: number;
  afterFaultMsMedian: number;
  afterFaultMsMax: number;
}

type Run = Omit<FaultRun, 'fault'> & { lateLines?: FaultRun['overlaps'] };

async function runOne(
  kind: Kind,
  heartbeatTimeoutMs: number,
  bed: Bed | undefined,
  i: number,
): Promise<Run> {
  if (kind === 'cut-link' || kind === 'cut-link-any') {
    const at: CutMoment = kind === 'cut-link' ? 'quiet' : 'any';
    return runCutLink(bed!, `${kind}-${i}`, { heartbeatTimeoutMs, at });
  }
  const dir = mkdtempSync(join(tmpdir(), `mpmake-one-writer-${kind}-`));
  try {
    return await runFault(kind, { dir, heartbeatTimeoutMs });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runOneWriter(
  reps: number,
  heartbeatTimeoutMs: number,
  /** After each fault's repetitions, with the rows so far. */
  onRows: (rows: Row[], bedSkipped: string | undefined) => Promise<void> = async () => {},
): Promise<{ rows: Row[]; bedSkipped: string | undefined }> {
  const bedSkipped = bedMissing();
  // The cut link first (on a shared box, what is measured first is kept first).
  const kinds: Kind[] = bedSkipped ? [...FAULTS] : ['cut-link', ...FAULTS, 'cut-link-any'];
  if (bedSkipped) process.stderr.write(`one-writer: no cut-link runs: ${bedSkipped}\n`);
  const rows: Row[] = [];
  let bed: Bed | undefined;
  try {
    for (const fault of kinds) {
      if (fault.startsWith('cut-link')) bed ??= await Bed.create();
      const runs: Run[] = [];
      let harnessErrors = 0;
      for (let i = 0; i < reps; i++) {
        try {
          const r = await runOne(fault, heartbeatTimeoutMs, bed, i);
          runs.push(r);
          process.stderr.write(
            `${fault} ${i + 1}/${reps}: exit ${r.code}, ${r.overlaps.length} overlaps, ` +
              `${r.lateLines?.length ?? 0} late, ${r.incomplete.length} incomplete, ` +
              `${r.copies} copies, ${(r.afterFaultMs / 1000).toFixed(1)} s\n`,
          );
        } catch (err) {
          harnessErrors++;
          process.stderr.write(
            `${fault} ${i + 1}/${reps}: harness error: ${(err as Error).message}\n`,
          );
        }
      }
      const after = runs.map((r) => r.afterFaultMs);
      rows.push({
        fault,
        reps: runs.length,
        overlaps: runs.reduce((a, r) => a + r.overlaps.length, 0),
        lateWrites: runs.reduce((a, r) => a + (r.lateLines?.length ?? 0), 0),
        harnessErrors,
        failedBuilds: runs.filter((r) => r.code !== 0).length,
        incomplete: runs.reduce((a, r) => a + r.incomplete.length, 0),
        leftovers: runs.reduce((a, r) => a + r.leftovers.length, 0),
        strays: runs.reduce((a, r) => a + r.strays, 0),
        reruns: runs.reduce((a, r) => a + (r.report.jobs?.retried ?? 0), 0),
        afterFaultMsMedian: Math.round(median(after)),
        afterFaultMsMax: Math.round(Math.max(...after)),
      });
      await onRows(rows, bedSkipped);
    }
  } finally {
    await bed?.close();
  }
  return { rows, bedSkipped };
}

function markdownFor(
  rows: Row[],
  reps: number,
  heartbeatMs: number,
  bedSkipped: string | undefined,
): string {
  const ok = rows.every(
    (r) =>
      r.fault === 'cut-link-any' ||
      (r.overlaps === 0 &&
        r.lateWrites === 0 &&
        r.failedBuilds === 0 &&
        r.incomplete === 0 &&
        r.harnessErrors === 0),
  );
  return (
    `# One writer at a time (issue 13)\n\n` +
    `${reps} repetition(s) of each fault, --mp-heartbeat-timeout=${heartbeatMs} ` +
    `(lease ${Math.floor(heartbeatMs * 0.75)} ms), two loopback agents of two slots, four ` +
    `targets written in eight steps each; cut link: the cluster test bed (three nodes, ` +
    `agents of two slots, tree and write log on sshfs), the link restored after the build ` +
    `and the cut node's file system client drained before anything is read` +
    `${bedSkipped ? ` (not run here: ${bedSkipped})` : ''}. Target, for every fault but ` +
    `cut-link-any: 0 overlapping writes, 0 late writes, every build succeeds, every ` +
    `target whole — ${ok ? 'met' : 'MISSED'}` +
    `${reps < 20 ? ` (only ${reps} repetitions: the issue asks for 20)` : ''}. ` +
    `cut-link-any cuts at any moment: a write the node had sent and the file server ` +
    `not yet received when the link went down lands when it comes back (sshfs retries ` +
    `it, as an NFS hard mount would); its late writes are counted, not a target.\n\n` +
    markdownTable(
      [
        'fault',
        'reps',
        'overlaps',
        'late writes',
        'failed builds',
        'incomplete targets',
        'files left',
        'processes left',
        're-runs',
        'fault to end, median s',
        'max s',
        'harness errors',
      ],
      rows.map((r) => [
        r.fault,
        r.reps,
        r.overlaps,
        r.lateWrites,
        r.failedBuilds,
        r.incomplete,
        r.leftovers,
        r.strays,
        r.reruns,
        fmt(r.afterFaultMsMedian / 1000, 1),
        fmt(r.afterFaultMsMax / 1000, 1),
        r.harnessErrors,
      ]),
    ) +
    '\n'
  );
}

if (isMain(import.meta.url)) {
  try {
    const o = numberOptions(process.argv.slice(2), ['reps', 'heartbeat-ms']);
    const reps = o['reps'] ?? 20;
    const heartbeatMs = o['heartbeat-ms'] ?? 2000;
    const publish = (rows: Row[], bedSkipped: string | undefined): Promise<void> =>
      publishResults(
        'one-writer',
        { machine: machine(), reps, heartbeatMs, rows },
        markdownFor(rows, reps, heartbeatMs, bedSkipped),
      );
    // Published after each fault, so that a run cut short keeps what it measured.
    await runOneWriter(reps, heartbeatMs, publish);
  } catch (err) {
    process.stderr.write(`one-writer: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
