/**
 * Placement: a pure function from a snapshot of nodes to a choice. It is
 * MOSIX's static placement: a whole job goes, once, to the node where it is
 * expected to wait least. No I/O and no clocks of its own, so it is tested
 * on plain snapshots.
 */

import type { LoadMessage } from '../protocol/messages.js';

export interface NodeSnapshot {
  id: string;
  /** The client machine's own slots (a `localhost/N` host entry). */
  local: boolean;
  slots: number;
  /** From the node's last load report. */
  running: number;
  queued: number;
  /** Jobs this client has sent there and not yet seen end. */
  inFlight: number;
  /**
   * The node's queue as this client's user sees it (agents that serve
   * users round-robin report it): then only the jobs a new one of ours
   * would really wait behind count, not the whole queue.
   */
  fair?: FairView;
  /** 1-minute load average and cores, for load from other sources. */
  loadavg1: number;
  cpus: number;
  /** ms since the last load report arrived. */
  reportAgeMs: number;
  /** The node failed recently: avoid it while others are usable. */
  penalized: boolean;
}

/** A load report's fair-share view (see JobScheduler.fairShare on the agent). */
export interface FairView {
  mineRunning: number;
  mineQueued: number;
  /** Other users' waiting jobs, one count per user. */
  others: readonly number[];
}

/** The fair-share view in a load report, when the agent sent one. */
export function fairView(load: LoadMessage | undefined): { fair?: FairView } {
  if (load?.others === undefined) return {};
  return {
    fair: {
      mineRunning: load.mineRunning ?? 0,
      mineQueued: load.mineQueued ?? 0,
      others: load.others,
    },
  };
}

export type Choice =
  | { kind: 'node'; id: string }
  | { kind: 'local' }
  | { kind: 'none' }
  /** first-free placement only: every slot is taken, the job is turned away. */
  | { kind: 'refuse' };

/** The placement policies: ours, and the static baseline the benchmarks compare with. */
export type PlacementPolicy = 'lowest-wait' | 'first-free';

export interface PlacementOptions {
  /** Reports older than this are not trusted: only our own in-flight counts. */
  staleAfterMs: number;
}

export const DEFAULT_PLACEMENT: PlacementOptions = { staleAfterMs: 3000 };

/**
 * Expected wait on a node, in units of "jobs per slot": the jobs ahead of a
 * new one (known from the agent's report, or at least our own in-flight
 * ones, since reports lag dispatches) plus the new one, over the slots.
 * Load the agent did not start itself (other users' work, other processes)
 * is added from the load average, beyond what the agent already runs.
 */
export function expectedWait(n: NodeSnapshot, opts: PlacementOptions = DEFAULT_PLACEMENT): number {
  const fresh = n.reportAgeMs <= opts.staleAfterMs;
  const reported = fresh ? n.running + (n.fair ? waitingAhead(n, n.fair) : n.queued) : 0;
  const ahead = Math.max(reported, n.inFlight);
  const foreign =
    n.local || n.reportAgeMs > opts.staleAfterMs
      ? 0
      : Math.max(0, Math.min(n.loadavg1, n.cpus) - n.running) * (n.slots / Math.max(1, n.cpus));
  return (ahead + foreign + 1) / Math.max(1, n.slots);
}

/**
 * Waiting jobs that start before a new one of ours on a node serving users
 * round-robin. Ours waiting there: the report's count, or more if we sent
 * jobs since (in flight beyond what it saw running). The new job is our
 * k-th in line, so it waits behind our k − 1 and at most k of each other
 * user's.
 */
function waitingAhead(n: NodeSnapshot, fair: FairView): number {
  const mine = Math.max(fair.mineQueued, n.inFlight - fair.mineRunning);
  const k = mine + 1;
  let ahead = mine;
  for (const q of fair.others) ahead += Math.min(q, k);
  return ahead;
}

/**
 * Picks the node with the lowest expected wait. Penalised nodes are used
 * only when nothing else is. Ties go to the node with fewer of our jobs in
 * flight, then to the one after `rotate` in order, so equal nodes share.
 */
export function pick(
  nodes: readonly NodeSnapshot[],
  rotate = 0,
  opts: PlacementOptions = DEFAULT_PLACEMENT,
): Choice {
  if (nodes.length === 0) return { kind: 'none' };
  const healthy = nodes.filter((n) => !n.penalized);
  const pool = healthy.length ? healthy : nodes;
  let best: NodeSnapshot | undefined;
  let bestScore = Infinity;
  for (let k = 0; k < pool.length; k++) {
    const n = pool[(k + rotate) % pool.length]!;
    const score = expectedWait(n, opts);
    if (
      score < bestScore - 1e-9 ||
      (Math.abs(score - bestScore) <= 1e-9 && best && n.inFlight < best.inFlight)
    ) {
      best = n;
      bestScore = score;
    }
  }
  if (!best) return { kind: 'none' };
  return best.local ? { kind: 'local' } : { kind: 'node', id: best.id };
}

/**
 * The baseline that stands for LSF in the benchmarks: the first node in list
 * order with a free slot, else refuse ("cluster busy"). No queueing, no
 * load from other sources.
 */
export function pickFirstFree(
  nodes: readonly NodeSnapshot[],
  opts: PlacementOptions = DEFAULT_PLACEMENT,
): Choice {
  if (nodes.length === 0) return { kind: 'none' };
  for (const n of nodes) {
    const reported = n.reportAgeMs <= opts.staleAfterMs ? n.running + n.queued : 0;
    if (Math.max(reported, n.inFlight) < n.slots)
      return n.local ? { kind: 'local' } : { kind: 'node', id: n.id };
  }
  return { kind: 'refuse' };
}

/** One line per candidate, for --mp-explain. */
export function explain(
  nodes: readonly NodeSnapshot[],
  opts: PlacementOptions = DEFAULT_PLACEMENT,
): string {
  return nodes
    .map((n) => {
      const stale = n.reportAgeMs > opts.staleAfterMs ? ' stale' : '';
      const pen = n.penalized ? ' penalised' : '';
      const fair = n.fair ? ` (${waitingAhead(n, n.fair)} ahead of ours)` : '';
      return `${n.id} ${expectedWait(n, opts).toFixed(2)} [run ${n.running} queue ${n.queued}${fair} mine ${n.inFlight} / ${n.slots} slots, load ${n.loadavg1.toFixed(1)} of ${n.cpus} cpus${stale}${pen}]`;
    })
    .join('; ');
}
