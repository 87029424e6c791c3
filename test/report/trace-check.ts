/**
 * Checks a parsed trace file against the trace-event format as Perfetto and
 * chrome://tracing read it, and against mpmake's own rules (named
 * processes and slots, slot lanes that never overlap). Returns the
 * problems, empty when there are none.
 */
type Obj = Record<string, unknown>;

const PHASES = new Set(['X', 'i', 'C', 'M']);

export function traceProblems(trace: unknown): string[] {
  const problems: string[] = [];
  if (typeof trace !== 'object' || trace === null) return ['not an object'];
  const t = trace as Obj;
  if (!Array.isArray(t['traceEvents'])) return ['no traceEvents array'];
  if (t['displayTimeUnit'] !== 'ms') problems.push('displayTimeUnit is not "ms"');
  if (typeof t['otherData'] !== 'object' || t['otherData'] === null) problems.push('no otherData');
  const events = t['traceEvents'] as Obj[];
  const processNames = new Set<number>();
  const threadNames = new Set<string>();
  const lanes = new Map<string, Array<{ ts: number; dur: number; name: string }>>();
  events.forEach((e, i) => {
    const where = `event ${i} (${JSON.stringify(e).slice(0, 120)})`;
    if (typeof e['name'] !== 'string') problems.push(`${where}: no name`);
    if (typeof e['ph'] !== 'string' || !PHASES.has(e['ph'])) problems.push(`${where}: bad ph`);
    if (typeof e['ts'] !== 'number' || !(e['ts'] >= 0)) problems.push(`${where}: bad ts`);
    if (!Number.isInteger(e['pid'])) problems.push(`${where}: bad pid`);
    if (!Number.isInteger(e['tid'])) problems.push(`${where}: bad tid`);
    const key = `${String(e['pid'])}/${String(e['tid'])}`;
    if (e['ph'] === 'M') {
      const args = e['args'] as Obj | undefined;
      if (e['name'] === 'process_name' && typeof args?.['name'] === 'string') {
        processNames.add(e['pid'] as number);
      }
      if (e['name'] === 'thread_name' && typeof args?.['name'] === 'string') threadNames.add(key);
    }
    if (e['ph'] === 'X') {
      if (typeof e['dur'] !== 'number' || !(e['dur'] >= 0)) problems.push(`${where}: bad dur`);
      const list = lanes.get(key) ?? [];
      list.push({ ts: e['ts'] as number, dur: e['dur'] as number, name: String(e['name']) });
      lanes.set(key, list);
    }
  });
  for (const [key, list] of lanes) {
    const pid = Number(key.split('/')[0]);
    if (!processNames.has(pid)) problems.push(`pid ${pid} has no process_name`);
    if (!threadNames.has(key)) problems.push(`${key} has no thread_name`);
    list.sort((a, b) => a.ts - b.ts);
    for (let i = 1; i < list.length; i++) {
      const a = list[i - 1]!;
      const b = list[i]!;
      if (b.ts < a.ts + a.dur) {
        problems.push(`${key}: "${b.name}" at ${b.ts} overlaps "${a.name}" (${a.ts}+${a.dur})`);
      }
    }
  }
  return problems;
}

/** The job events: complete events of category `job`. */
export function jobEvents(trace: unknown): Obj[] {
  const events = (trace as { traceEvents: Obj[] }).traceEvents;
  return events.filter((e) => e['ph'] === 'X' && e['cat'] === 'job');
}

/**
 * An XML-ish check: tags balance and nest, attributes are quoted, no
 * stray `<` or `&`. Returns the problems.
 */
export function xmlProblems(text: string): string[] {
  const problems: string[] = [];
  const stack: string[] = [];
  const body = text.replace(/^<\?xml[^?]*\?>\s*/, '');
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let last = 0;
  for (let m = tag.exec(body); m !== null; m = tag.exec(body)) {
    const between = body.slice(last, m.index);
    if (between.includes('<')) problems.push(`stray "<" before offset ${m.index}`);
    if (/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(between)) problems.push(`bare "&" near ${m.index}`);
    last = m.index + m[0].length;
    const [, close, name, , selfClose] = m;
    if (selfClose) continue;
    if (close) {
      const open = stack.pop();
      if (open !== name) problems.push(`</${name}> closes <${open ?? 'nothing'}>`);
    } else {
      stack.push(name!);
    }
  }
  if (body.slice(last).trim() !== '') problems.push('text after the last tag');
  if (stack.length > 0) problems.push(`unclosed: ${stack.join(' ')}`);
  return problems;
}
