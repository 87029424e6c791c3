/** A job for the critical path: when it ran (any one unit). */
export interface TimedJob {
  start: number;
  end: number;
}

/**
 * The longest chain of jobs that ran one after another, by total run time:
 * B can follow A when B started no earlier than `epsilon` before A ended.
 * An approximation of the build's critical path from times alone (the
 * trace has no dependency graph): the part of the build that did not run
 * in parallel, and so bounds its wall time from below. Dynamic programming
 * over jobs in start order, with a prefix maximum over end times
 * (O(n log n)). Returns the chain in order.
 */
export function criticalPath<T extends TimedJob>(jobs: readonly T[], epsilon = 0): T[] {
  const order = jobs
    .map((_, i) => i)
    .sort((a, b) => jobs[a]!.start - jobs[b]!.start || jobs[a]!.end - jobs[b]!.end || a - b);
  const ends = [...new Set(jobs.map((j) => j.end))].sort((a, b) => a - b);
  // A Fenwick tree over end ranks holding the best chain ending there.
  const treeBest = new Array<number>(ends.length + 1).fill(0);
  const treeAt = new Array<number>(ends.length + 1).fill(-1);
  const best = new Array<number>(jobs.length).fill(0);
  const prev = new Array<number>(jobs.length).fill(-1);
  /** How many ends are <= t. */
  const rank = (t: number): number => {
    let lo = 0;
    let hi = ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ends[mid]! <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  let top = -1;
  for (const i of order) {
    const job = jobs[i]!;
    let before = -1;
    let beforeBest = 0;
    for (let k = rank(job.start + epsilon); k > 0; k -= k & -k) {
      if (treeAt[k]! >= 0 && treeBest[k]! > beforeBest) {
        beforeBest = treeBest[k]!;
        before = treeAt[k]!;
      }
    }
    best[i] = beforeBest + Math.max(0, job.end - job.start);
    prev[i] = before;
    for (let k = rank(job.end); k <= ends.length; k += k & -k) {
      if (treeAt[k]! < 0 || best[i]! > treeBest[k]!) {
        treeBest[k] = best[i]!;
        treeAt[k] = i;
      }
    }
    if (top < 0 || best[i]! > best[top]!) top = i;
  }
  const chain: T[] = [];
  for (let i = top; i >= 0; i = prev[i]!) chain.push(jobs[i]!);
  return chain.reverse();
}
