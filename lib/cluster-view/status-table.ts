import { printable } from '../agent/agent-log.js';
import type { StatusClient } from '../protocol/messages.js';
import type { NodeStatus } from './node-status.js';

/** Text from an agent, safe to print on a terminal (no escapes, one line). */
export const safe = (text: string, maxChars = 200): string => printable(text, maxChars);

/** `3.1G`, `512M`: free memory in a narrow column. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'K', 'M', 'G', 'T', 'P'];
  let n = bytes;
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return `${n >= 100 || u === 0 ? Math.round(n) : n.toFixed(1)}${units[u]}`;
}

/** `+12`, `-3`, `0`: a clock skew in ms. */
export function formatSkew(ms: number): string {
  return ms > 0 ? `+${ms}` : String(ms);
}

type Align = 'l' | 'r';

/**
 * Lays out rows under a header: each column as wide as its widest cell,
 * two spaces apart; the last column is not padded (it holds free text).
 */
export function formatTable(header: string[], aligns: Align[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => {
        if (i === cells.length - 1) return aligns[i] === 'r' ? c.padStart(widths[i]!) : c;
        return aligns[i] === 'r' ? c.padStart(widths[i]!) : c.padEnd(widths[i]!);
      })
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

const HEADER = [
  'NODE',
  'ADDRESS',
  'STATE',
  'SLOTS',
  'RUN',
  'QUEUED',
  'LOAD',
  'CORES',
  'FREE MEM',
  'SKEW ms',
  'VERSION',
  'CLIENTS',
  'NOTE',
];
const ALIGNS: Align[] = ['l', 'l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l', 'r', 'l'];

const num = (v: number | null, f: (n: number) => string = String): string =>
  v === null ? '-' : f(v);

/** One node as the cells of a table row. */
export function nodeRow(n: NodeStatus): string[] {
  return [
    safe(n.nodeId ?? '-', 40),
    n.address,
    n.state,
    num(n.slots),
    num(n.running),
    num(n.queued),
    num(n.loadavg1, (v) => v.toFixed(2)),
    num(n.cpus),
    num(n.freeMemBytes, formatBytes),
    num(n.clockSkewMs, formatSkew),
    safe(n.agentVersion ?? '-', 20),
    n.clients === null ? '-' : String(n.clients.length),
    [
      n.reason === null ? '' : safe(n.reason),
      n.alsoAt ? `also reached as ${n.alsoAt.join(', ')}` : '',
    ]
      .filter(Boolean)
      .join('; '),
  ];
}

/** The node table: a header and one row per node. */
export function nodeTable(nodes: readonly NodeStatus[]): string[] {
  return formatTable(HEADER, ALIGNS, nodes.map(nodeRow));
}

/** `alice@ws1 pid 4242`: who a client is. */
export function clientName(c: Pick<StatusClient, 'user' | 'host' | 'pid'>): string {
  return `${safe(c.user, 40)}@${safe(c.host, 60)} pid ${c.pid}`;
}

/** `2 of 3 nodes up: 4 slots, 1 running, 0 queued`. */
export function summaryLine(nodes: readonly NodeStatus[]): string {
  const up = nodes.filter((n) => n.state === 'up');
  const sum = (f: (n: NodeStatus) => number | null): number =>
    up.reduce((a, n) => a + (f(n) ?? 0), 0);
  return (
    `${up.length} of ${nodes.length} node${nodes.length === 1 ? '' : 's'} up: ` +
    `${sum((n) => n.slots)} slots, ${sum((n) => n.running)} running, ${sum((n) => n.queued)} queued`
  );
}

/**
 * The builds using the cluster, one line each: who, and how many jobs
 * run or wait on which node. Clients are told apart by user, host, pid
 * and build.
 */
export function clientLines(nodes: readonly NodeStatus[]): string[] {
  const byClient = new Map<string, { client: StatusClient; where: string[] }>();
  for (const n of nodes) {
    for (const c of n.clients ?? []) {
      const key = JSON.stringify([c.user, c.host, c.pid, c.build]);
      let entry = byClient.get(key);
      if (!entry) byClient.set(key, (entry = { client: c, where: [] }));
      const counts = [
        c.running > 0 ? `${c.running} running` : '',
        c.queued ? `${c.queued} queued` : '',
      ]
        .filter(Boolean)
        .join(', ');
      entry.where.push(`${safe(n.nodeId ?? n.address, 40)} ${counts || 'idle'}`);
    }
  }
  return [...byClient.values()].map(
    ({ client, where }) =>
      `  ${clientName(client)} build ${safe(client.build, 20)}: ${where.join('; ')}`,
  );
}

/**
 * The users with jobs on the cluster, as a table: per user (as the agents
 * tell users apart, whose share of their slots each gets), running and
 * queued jobs summed over the nodes that are up, and on which. BUILDS is
 * the most builds that user has on any one node (a build spreads over
 * nodes). No rows, no table.
 */
export function userTable(nodes: readonly NodeStatus[]): string[] {
  const byUser = new Map<
    string,
    { builds: number; running: number; queued: number; where: string[] }
  >();
  for (const n of nodes) {
    if (n.state !== 'up') continue;
    for (const u of n.users ?? []) {
      let entry = byUser.get(u.user);
      if (!entry) byUser.set(u.user, (entry = { builds: 0, running: 0, queued: 0, where: [] }));
      entry.builds = Math.max(entry.builds, u.builds);
      entry.running += u.running;
      entry.queued += u.queued;
      entry.where.push(`${safe(n.nodeId ?? n.address, 40)} ${u.running}/${u.queued}`);
    }
  }
  if (byUser.size === 0) return [];
  const rows = [...byUser.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([user, e]) => [
      safe(user, 60),
      String(e.builds),
      String(e.running),
      String(e.queued),
      e.where.join(', '),
    ]);
  return formatTable(
    ['USER', 'BUILDS', 'RUN', 'QUEUED', 'RUN/QUEUED PER NODE'],
    ['l', 'r', 'r', 'r', 'l'],
    rows,
  );
}

/** The whole `mpm status` text. */
export function statusText(nodes: readonly NodeStatus[]): string {
  const lines = [...nodeTable(nodes), '', summaryLine(nodes)];
  const clients = clientLines(nodes);
  if (clients.length > 0) lines.push('clients:', ...clients);
  const users = userTable(nodes);
  if (users.length > 0) lines.push('users:', ...users.map((l) => `  ${l}`));
  return lines.join('\n') + '\n';
}
