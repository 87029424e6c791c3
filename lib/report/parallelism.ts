/** A half-open interval [start, end), in any one unit. */
export interface Interval {
  start: number;
  end: number;
}

/** From `t` until the next step, `n` intervals are open. */
export interface Step {
  t: number;
  n: number;
}

/**
 * How many intervals are open over time: one step per distinct time where
 * the count changes, starting at the first start and ending at 0 at the
 * last end. An interval ending where another starts does not overlap it.
 */
export function runningSteps(intervals: readonly Interval[]): Step[] {
  const deltas = new Map<number, number>();
  for (const { start, end } of intervals) {
    if (!(end > start)) continue;
    deltas.set(start, (deltas.get(start) ?? 0) + 1);
    deltas.set(end, (deltas.get(end) ?? 0) - 1);
  }
  const steps: Step[] = [];
  let n = 0;
  for (const t of [...deltas.keys()].sort((a, b) => a - b)) {
    const d = deltas.get(t) ?? 0;
    if (d === 0) continue;
    n += d;
    steps.push({ t, n });
  }
  return steps;
}

export interface Parallelism {
  /** Most intervals open at once. */
  peak: number;
  /** Time-weighted mean of the open count over the window, two decimals. */
  mean: number;
}

/**
 * Peak and mean number of jobs running at once. The window defaults to
 * the first start to the last end; the build's window (make's whole run)
 * also counts the time when nothing ran.
 */
export function parallelism(
  intervals: readonly Interval[],
  window?: { from: number; to: number },
): Parallelism {
  const clipped = window
    ? intervals.map((i) => ({
        start: Math.max(i.start, window.from),
        end: Math.min(i.end, window.to),
      }))
    : intervals;
  const steps = runningSteps(clipped);
  const first = steps[0];
  const last = steps[steps.length - 1];
  if (!first || !last) return { peak: 0, mean: 0 };
  const from = window?.from ?? first.t;
  const to = window?.to ?? last.t;
  let peak = 0;
  let area = 0;
  steps.forEach((s, i) => {
    peak = Math.max(peak, s.n);
    const next = steps[i + 1];
    if (next) area += s.n * (next.t - s.t);
  });
  const mean = to > from ? area / (to - from) : 0;
  return { peak, mean: Math.round(mean * 100) / 100 };
}
