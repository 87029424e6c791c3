import { writeFileAtomic } from '../output-file.js';
import type { Fenced, LeftOut, Rerun } from './cluster.js';
import type { SameAgent } from './node-identity.js';
import type { FsReport } from '../report/fs-lag.js';

/** What a build leaves behind for people (one line) and CI (JSON). */
export interface BuildReport {
  version: 1;
  exitCode: number | null;
  signal: string | null;
  wallMs: number;
  /** Where recipes ran: remote on agents, local when sent back to the client. */
  mode: 'cluster' | 'local-fallback' | 'local';
  jobs: {
    total: number;
    remote: number;
    local: number;
    retried: number;
    failed: number;
    /**
     * Refusals: by an agent (queue limit, byte budget, root check; the job
     * was placed again), or "cluster busy" under first-free placement.
     */
    refused?: number;
    /**
     * `refused` by kind: an agent's refusal code (refusal.ts: `queue-limit`,
     * `byte-budget`, `job-too-big`, `invalid-job`, `outside-roots`, `no-cwd`,
     * `permission`), or `cluster-busy` under first-free placement.
     */
    refusedByKind?: Record<string, number>;
    /** Taken back from a node's queue and placed on a node with a free slot. */
    moved?: number;
    /** Of `local`: kept on the client as costing less there than a round trip to a node. */
    short?: number;
    /** Cheaper on the client but sent: as many short lines as the client has cores ran there. */
    shortBusy?: number;
  };
  nodes: Array<{ id: string; address: string; slots: number; jobs: number }>;
  leftOut: LeftOut[];
  /** Addresses of an agent already listed under another address (counted once). */
  sameAgent?: SameAgent[];
  /** Jobs run again because their node was lost while running them, and why. */
  reruns?: Rerun[];
  /** Nodes lost with jobs running and fenced (--mp-fence) before those ran again: how it went. */
  fenced?: Fenced[];
  slots: number;
  /**
   * Jobs running at once over make's run, from their start and end times:
   * the most, and the time-weighted mean (idle time counts as 0).
   */
  parallelism?: { peak: number; mean: number };
  /** The pool make used: ours, a parent's, or none (serial); tokens unaccounted for. */
  jobserver?: {
    kind: 'own' | 'parent' | 'make' | 'none';
    tokensLost: number;
    tokensRefilled: number;
  };
  /**
   * Environment variables not shipped to nodes because they look like
   * secrets (or match --mp-env-deny): names only, sorted, never values.
   */
  heldBackEnv?: string[];
  /**
   * Visibility lag on the shared file system (--mp-fs-wait): until the
   * client saw each job's targets as its node did, and until nodes saw
   * inputs written elsewhere; p50/p99/max, retries, files past the bound.
   */
  fs?: FsReport;
}

/**
 * The one line naming the variables held back from nodes, each with the
 * rule that held it, or undefined when none were.
 */
export function heldBackLine(held: ReadonlyMap<string, string>): string | undefined {
  if (held.size === 0) return undefined;
  const names = [...held.keys()].sort().map((name) => `${name} (${held.get(name)})`);
  return (
    `mpmake: kept on this machine, as they look like secrets: ${names.join(', ')} ` +
    '(recipes on nodes ran without them; ship one with --mp-env-allow=NAME)'
  );
}

export function summaryLine(r: BuildReport): string {
  const secs = (r.wallMs / 1000).toFixed(2);
  if (r.mode !== 'cluster') return `mpmake: built locally with make (${r.mode}), ${secs} s`;
  const perNode = r.nodes.map((n) => `${n.id} ${n.jobs}`).join(', ');
  const par = r.parallelism
    ? `, parallelism peak ${r.parallelism.peak} mean ${r.parallelism.mean.toFixed(2)}`
    : '';
  const stale = r.fs ? r.fs.targets.pastBound + r.fs.inputs.pastBound : 0;
  const fs =
    stale > 0 ? `; ${stale} file${stale === 1 ? '' : 's'} still stale past --mp-fs-wait` : '';
  return (
    `mpmake: ${r.jobs.total} jobs: ${r.jobs.remote} remote (${perNode}), ${r.jobs.local} local, ` +
    `${r.jobs.retried} re-run, ${r.jobs.failed} failed${fencedCounts(r.fenced ?? [])}; ` +
    `${r.slots} slots; ${secs} s${par}${fs}`
  );
}

/** `, 1 node fenced (n1)`, `, 1 fence failed (n2)`: nothing when no node was fenced. */
function fencedCounts(fenced: readonly Fenced[]): string {
  const count = (ok: boolean, one: string, many: string): string => {
    const nodes = fenced.filter((f) => f.ok === ok).map((f) => f.node);
    return nodes.length === 0
      ? ''
      : `, ${nodes.length} ${nodes.length === 1 ? one : many} (${nodes.join(', ')})`;
  };
  return count(true, 'node fenced', 'nodes fenced') + count(false, 'fence failed', 'fences failed');
}

/** Written whole or not at all (see output-file.ts); throws when it cannot be. */
export function writeReport(path: string, r: BuildReport): void {
  writeFileAtomic(path, JSON.stringify(r, null, 2) + '\n');
}

/**
 * Writes the report after the build; a failure is one line on stderr and
 * never changes the build's exit status (the path was checked at start).
 */
export function writeReportQuietly(path: string, r: BuildReport): void {
  try {
    writeReport(path, r);
  } catch (err) {
    process.stderr.write(`mpmake: cannot write the report ${path}: ${(err as Error).message}\n`);
  }
}
