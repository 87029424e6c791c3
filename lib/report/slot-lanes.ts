import type { JobSpan } from './job-span.js';

/**
 * How far a job may seem to start before the previous job on its lane
 * ended and still be drawn on that lane, starting when it frees. Starts
 * are derived from the agent's run time and the client's arrival time of
 * the exit, so two back-to-back jobs on one slot can overlap by the jitter
 * of the network and of whole-millisecond rounding.
 */
export const LANE_JITTER_MS = 5;

/** A timed job placed on one of its node's slot lanes. */
export interface LanedSpan {
  span: JobSpan;
  /** 0-based; below the node's slots unless its jobs really overlapped more. */
  lane: number;
  /** The span's start, or the lane's free time when clipped by the jitter rule. */
  startMs: number;
  endMs: number;
}

/**
 * Puts every timed job on the lowest lane of its node that is free at its
 * start, so jobs that overlap get different lanes and a lane is a slot's
 * history. A node gets a lane beyond its slots only when more of its jobs
 * overlapped than it has slots (beyond {@link LANE_JITTER_MS}).
 */
export function assignLanes(
  spans: readonly JobSpan[],
  slotsOf: (nodeId: string) => number,
): LanedSpan[] {
  const byNode = new Map<string, JobSpan[]>();
  for (const s of spans) {
    if (!s.timed) continue;
    const list = byNode.get(s.nodeId) ?? [];
    list.push(s);
    byNode.set(s.nodeId, list);
  }
  const out: LanedSpan[] = [];
  for (const [nodeId, list] of byNode) {
    list.sort((a, b) => a.startMs - b.startMs || a.seq - b.seq);
    // When each lane frees; a node's slots exist from the start.
    const freeAt: number[] = Array.from({ length: Math.max(1, slotsOf(nodeId)) }, () => -Infinity);
    for (const span of list) {
      let lane = freeAt.findIndex((t) => t <= span.startMs);
      let startMs = span.startMs;
      if (lane < 0) {
        const soonest = Math.min(...freeAt);
        if (soonest - span.startMs <= LANE_JITTER_MS && soonest <= span.endMs) {
          lane = freeAt.indexOf(soonest);
          startMs = soonest;
        } else {
          lane = freeAt.length;
          freeAt.push(-Infinity);
        }
      }
      freeAt[lane] = span.endMs;
      out.push({ span, lane, startMs, endMs: span.endMs });
    }
  }
  return out.sort((a, b) => a.startMs - b.startMs || a.span.seq - b.span.seq);
}
