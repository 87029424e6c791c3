import type { JobEndEvent } from '../coordinator/build-events.js';

/** Lag figures over the jobs that waited: ms, to the microsecond. */
export interface LagFigures {
  /** Jobs whose files were revalidated. */
  jobs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Re-reads after the first look, over all jobs. */
  retries: number;
  /** Files still different when the bound passed. */
  pastBound: number;
}

/** The report's `fs`: the wait bound and the lag of targets (client) and inputs (nodes). */
export interface FsReport {
  waitMs: number;
  targets: LagFigures;
  inputs: LagFigures;
}

const round3 = (ms: number): number => Math.round(ms * 1000) / 1000;

/** The nearest-rank percentile of sorted values. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function figures(
  waits: ReadonlyArray<{ lagMs: number; retries: number; stale: string[] }>,
): LagFigures {
  const lags = waits.map((w) => w.lagMs).sort((a, b) => a - b);
  return {
    jobs: waits.length,
    p50Ms: round3(percentile(lags, 50)),
    p99Ms: round3(percentile(lags, 99)),
    maxMs: round3(lags[lags.length - 1] ?? 0),
    retries: waits.reduce((a, w) => a + w.retries, 0),
    pastBound: waits.reduce((a, w) => a + w.stale.length, 0),
  };
}

/** Visibility lag over a build's finished jobs. */
export function fsReport(waitMs: number, ends: readonly JobEndEvent[]): FsReport {
  return {
    waitMs,
    targets: figures(ends.flatMap((e) => (e.fs ? [e.fs] : []))),
    inputs: figures(ends.flatMap((e) => (e.inputWait ? [e.inputWait] : []))),
  };
}
