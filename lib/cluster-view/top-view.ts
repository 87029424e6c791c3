import type { StatusJob } from '../protocol/messages.js';
import type { NodeStatus } from './node-status.js';
import { clientName, nodeTable, safe, summaryLine, userTable } from './status-table.js';

/** Queued jobs listed under a node; the rest are counted. */
const QUEUED_SHOWN = 3;

export interface TopViewOptions {
  nowMs: number;
  /** Terminal size; lines are cut to `columns`, the view to `rows` lines. */
  columns: number;
  rows: number;
  /** Show the key help (a live view, not a snapshot). */
  interactive: boolean;
}

/** `8.2s`, `4m05s`, `2h13m`: how long a job has run. */
export function formatElapsed(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** The lines under a node: its running jobs, then a few queued ones. */
export function jobLines(node: NodeStatus, nowMs: number): string[] {
  const jobs = node.jobs ?? [];
  const who = (job: StatusJob): string => {
    const client = node.clients?.find((c) => c.build === job.build);
    return client ? clientName(client) : `build ${safe(job.build, 20)}`;
  };
  const agentNow = nowMs + (node.clockSkewMs ?? 0);
  const lines: string[] = [];
  const queued = jobs.filter((j) => j.startedAtMs === null);
  for (const job of jobs) {
    if (job.startedAtMs === null) continue;
    const elapsed = formatElapsed(agentNow - job.startedAtMs).padStart(7);
    lines.push(`    ${elapsed}  ${who(job)}  ${safe(job.command)}`);
  }
  for (const job of queued.slice(0, QUEUED_SHOWN)) {
    lines.push(`     queued  ${who(job)}  ${safe(job.command)}`);
  }
  const more = queued.length - Math.min(queued.length, QUEUED_SHOWN) + node.jobsLeftOut;
  if (more > 0) lines.push(`    … ${more} more waiting`);
  return lines;
}

/**
 * One frame of `mpm top`: a title with the cluster's totals, the users
 * with jobs (running and queued per user), then the node table with each node's jobs under its row (which build, which
 * command, for how long), cut to the terminal's size.
 */
export function topLines(nodes: readonly NodeStatus[], opts: TopViewOptions): string[] {
  const clock = new Date(opts.nowMs).toTimeString().slice(0, 8);
  const title = `mpm top  ${clock}  ${summaryLine(nodes)}${opts.interactive ? '   (q: quit)' : ''}`;
  // Job lines are laid out apart from the table so they do not widen its columns.
  const table = nodeTable(nodes);
  const users = userTable(nodes);
  const lines = [title, '', ...users, ...(users.length > 0 ? [''] : []), table[0]!];
  nodes.forEach((n, i) => {
    lines.push(table[i + 1]!);
    lines.push(...jobLines(n, opts.nowMs));
  });
  let out = lines;
  if (out.length > opts.rows) {
    const kept = Math.max(1, opts.rows - 1);
    out = [...out.slice(0, kept), `… ${out.length - kept} more lines (a taller window shows them)`];
  }
  return out.map((l) => (l.length > opts.columns ? l.slice(0, opts.columns) : l));
}
