import { criticalPath } from './critical-path.js';
import { parallelism, runningSteps, type Parallelism } from './parallelism.js';
import type { TraceJob, TraceModel } from './trace-model.js';

/**
 * B can follow A on the critical path when B started at most this long
 * before A ended. A job that waited for another was asked for (and so
 * started) after the other's exit reached the client, and both times are on
 * the client's clock: a millisecond absorbs rounding. A wider margin lets
 * the chain pick jobs that merely overlapped.
 */
export const CRITICAL_EPSILON_US = 1_000;

export interface TraceAnalysis {
  /** The build's window, µs (at least 1). */
  endUs: number;
  /** Jobs running at once over the window. */
  parallelism: Parallelism;
  /** The longest chain of jobs that ran one after another, in order. */
  critical: TraceJob[];
  /** The time they cover, µs (a job starting just before the previous ended counts once). */
  criticalUs: number;
  /**
   * How long every slot (-j) was busy, µs; undefined when the trace does
   * not say the slots. Then jobs may have waited for a slot rather than
   * for each other, and the chain is not only a chain of dependencies.
   */
  saturatedUs: number | undefined;
}

/** The time a chain covers: overlaps within the epsilon are not counted twice. */
function chainUs(chain: readonly TraceJob[]): number {
  let total = 0;
  let last = -Infinity;
  for (const j of chain) {
    total += Math.max(0, j.endUs - Math.max(j.startUs, last));
    last = Math.max(last, j.endUs);
  }
  return total;
}

/** Above this share of the build with every slot busy, the build is limited by slots. */
export const SATURATED_SHARE = 0.5;

/** What a trace says about the build: its parallelism and critical path. */
export function analyseTrace(model: TraceModel): TraceAnalysis {
  const endUs = Math.max(model.endUs, 1);
  const critical = criticalPath(
    model.jobs.map((j) => ({ start: j.startUs, end: j.endUs, job: j })),
    CRITICAL_EPSILON_US,
  ).map((c) => c.job);
  const intervals = model.jobs.map((j) => ({ start: j.startUs, end: j.endUs }));
  let saturatedUs: number | undefined;
  if (model.slots !== undefined) {
    const slots = model.slots;
    const steps = runningSteps(intervals);
    saturatedUs = 0;
    steps.forEach((s, i) => {
      const next = steps[i + 1];
      if (next && s.n >= slots) saturatedUs! += next.t - s.t;
    });
  }
  return {
    endUs,
    saturatedUs,
    parallelism: parallelism(intervals, { from: 0, to: endUs }),
    critical,
    criticalUs: chainUs(critical),
  };
}

/** A sentence when the build was mostly limited by its slots, else undefined. */
export function saturationNote(a: TraceAnalysis, slots: number | undefined): string | undefined {
  if (a.saturatedUs === undefined || slots === undefined) return undefined;
  const share = a.saturatedUs / a.endUs;
  if (share <= SATURATED_SHARE) return undefined;
  return (
    `All ${slots} slots were busy ${Math.round(share * 100)}% of the time: there jobs waited for a slot, ` +
    `not only for each other, so more slots (-j, nodes) would shorten the build too.`
  );
}
