/**
 * Reads a trace file back (ours: {@link buildTrace}) into what a picture
 * needs: the jobs, the node slot rows they ran on, and the build's window.
 * Times in µs from the trace's origin.
 */

export interface TraceJob {
  pid: number;
  tid: number;
  startUs: number;
  endUs: number;
  /** The event's (short) name. */
  name: string;
  /** The whole recipe line, when the trace has it. */
  command: string;
  exitCode: number | null;
  signal: string | null;
}

export interface TraceRow {
  pid: number;
  tid: number;
  /** The node's name (process_name), or `pid N`. */
  node: string;
  /** The slot's name (thread_name), or `tid N`. */
  slot: string;
}

export interface TraceModel {
  jobs: TraceJob[];
  /** Node slots in pid, then tid order; a node's idle slots too, when named. */
  rows: TraceRow[];
  /** Nodes (pids with a row), in order. */
  nodes: Array<{ pid: number; name: string }>;
  /** The end of the build's window: make's end, or the last job's. */
  endUs: number;
  /** The build's -j, when the trace says. */
  slots: number | undefined;
  /** mpmake's facts, when the trace has them. */
  exitCode: number | null | undefined;
  startedAt: string | undefined;
}

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) ? v : undefined;

/** Parses trace-event JSON (object or array format); throws on anything else. */
export function readTraceModel(json: unknown): TraceModel {
  const events = Array.isArray(json) ? json : isObj(json) ? json['traceEvents'] : undefined;
  if (!Array.isArray(events)) {
    throw new Error('not a trace-event file: no "traceEvents" array');
  }
  const other = isObj(json) && isObj(json['otherData']) ? json['otherData'] : undefined;
  const processNames = new Map<number, string>();
  const threadNames = new Map<string, { pid: number; tid: number; name: string }>();
  const jobs: TraceJob[] = [];
  for (const e of events) {
    if (!isObj(e)) continue;
    const pid = num(e['pid']) ?? 0;
    const tid = num(e['tid']) ?? 0;
    const args = isObj(e['args']) ? e['args'] : {};
    if (e['ph'] === 'M' && typeof args['name'] === 'string') {
      if (e['name'] === 'process_name') processNames.set(pid, args['name']);
      if (e['name'] === 'thread_name')
        threadNames.set(`${pid}/${tid}`, { pid, tid, name: args['name'] });
    } else if (e['ph'] === 'X') {
      const ts = num(e['ts']);
      if (ts === undefined) continue;
      const name = typeof e['name'] === 'string' ? e['name'] : '';
      const code = num(args['exitCode']);
      jobs.push({
        pid,
        tid,
        startUs: ts,
        endUs: ts + Math.max(0, num(e['dur']) ?? 0),
        name,
        command: typeof args['command'] === 'string' ? args['command'] : name,
        exitCode: code ?? null,
        signal: typeof args['signal'] === 'string' ? args['signal'] : null,
      });
    }
  }
  jobs.sort((a, b) => a.startUs - b.startUs || a.pid - b.pid || a.tid - b.tid);

  // Rows: every slot a job ran on, and the named slots of the nodes in
  // otherData (so idle capacity shows as empty rows).
  const nodePids = new Set<number>(jobs.map((j) => j.pid));
  if (other && Array.isArray(other['nodes'])) {
    for (const n of other['nodes']) {
      const pid = isObj(n) ? num(n['pid']) : undefined;
      if (pid !== undefined) nodePids.add(pid);
    }
  }
  const rowKeys = new Map<string, { pid: number; tid: number }>();
  for (const j of jobs) rowKeys.set(`${j.pid}/${j.tid}`, { pid: j.pid, tid: j.tid });
  for (const t of threadNames.values()) {
    if (nodePids.has(t.pid)) rowKeys.set(`${t.pid}/${t.tid}`, { pid: t.pid, tid: t.tid });
  }
  const rows: TraceRow[] = [...rowKeys.values()]
    .sort((a, b) => a.pid - b.pid || a.tid - b.tid)
    .map(({ pid, tid }) => ({
      pid,
      tid,
      node: processNames.get(pid) ?? `pid ${pid}`,
      slot: threadNames.get(`${pid}/${tid}`)?.name ?? `tid ${tid}`,
    }));
  const nodes: TraceModel['nodes'] = [];
  for (const r of rows) {
    if (!nodes.some((n) => n.pid === r.pid)) nodes.push({ pid: r.pid, name: r.node });
  }
  const lastEnd = jobs.reduce((m, j) => Math.max(m, j.endUs), 0);
  const exitCode = other ? other['exitCode'] : undefined;
  return {
    jobs,
    rows,
    nodes,
    endUs: Math.max(lastEnd, num(other?.['endUs']) ?? 0),
    slots: num(other?.['slots']),
    exitCode: exitCode === null ? null : num(exitCode),
    startedAt: typeof other?.['startedAt'] === 'string' ? other['startedAt'] : undefined,
  };
}
