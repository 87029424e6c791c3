import { runningSteps } from './parallelism.js';
import { analyseTrace, saturationNote } from './trace-analysis.js';
import { readTraceModel, type TraceJob, type TraceModel } from './trace-model.js';

/** Longest critical-path listing; the rest is counted. */
const LIST_MAX = 60;

const WIDTH = 1200;
const LEFT = 190;
const RIGHT = 28;
const PLOT = WIDTH - LEFT - RIGHT;
const ROW = 18;
const BAR = 14;
const NODE_GAP = 8;
const CHART = 110;
const LINE = 16;
const FONT = "system-ui, 'Segoe UI', Helvetica, Arial, sans-serif";
const MONO = "ui-monospace, Menlo, Consolas, 'DejaVu Sans Mono', monospace";
/** A white outline behind chart labels, so lines under them do not cross the text. */
const HALO = ' paint-order="stroke" stroke="#fff" stroke-width="3"';
/** One colour per node (Tableau 10). */
const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#59a14f',
  '#e15759',
  '#76b7b2',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac',
];

/** Text as XML character data: escaped, without the characters XML forbids. */
export function xmlText(text: string): string {
  return text
    .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/g, '?')
    .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '?')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

const seconds = (us: number, digits = 2): string => `${(us / 1e6).toFixed(digits)} s`;
const px = (v: number): string => String(Math.round(v * 10) / 10);

function clip(text: string, chars: number): string {
  const line = text.replace(/\s+/g, ' ').trim();
  if (chars <= 1) return '';
  return line.length > chars ? line.slice(0, chars - 1) + '…' : line;
}

/** A tick step of 1, 2 or 5 times a power of ten giving at most `most` ticks. */
function tickStep(span: number, most: number): number {
  const raw = span / most;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

interface Layout {
  x: (us: number) => number;
  endUs: number;
}

function axis(out: string[], layout: Layout, y: number, top: number): void {
  const stepUs = tickStep(layout.endUs / 1e6, 12) * 1e6;
  const digits = stepUs >= 1e6 ? 0 : stepUs >= 1e5 ? 1 : 2;
  out.push(
    `<line x1="${LEFT}" y1="${y}" x2="${LEFT + PLOT}" y2="${y}" stroke="#555" stroke-width="1"/>`,
  );
  for (let t = 0; t <= layout.endUs + 1; t += stepUs) {
    const x = px(layout.x(t));
    out.push(
      `<line x1="${x}" y1="${top}" x2="${x}" y2="${y}" stroke="#ddd" stroke-width="1"/>`,
      `<line x1="${x}" y1="${y}" x2="${x}" y2="${y + 4}" stroke="#555" stroke-width="1"/>`,
      `<text x="${x}" y="${y + 16}" text-anchor="middle" font-size="11" fill="#333">${seconds(t, digits)}</text>`,
    );
  }
}

function jobTitle(j: TraceJob, node: string, slot: string): string {
  const end = j.signal !== null ? `signal ${j.signal}` : `exit ${j.exitCode ?? '?'}`;
  return xmlText(
    `${j.command}\n${node}, ${slot}: started ${seconds(j.startUs)}, ran ${seconds(j.endUs - j.startUs)}, ${end}`,
  );
}

/**
 * Renders a trace (trace-event JSON, as `--mp-trace` writes it) as an SVG
 * picture: one row per node slot with a bar per job coloured by node and
 * the command as its tooltip, the number of jobs running over time below,
 * and the critical path (the longest chain of jobs that ran one after
 * another) outlined and listed: where splitting work would shorten the
 * build. Pure: JSON in, SVG text out.
 */
export function renderTraceSvg(json: unknown): string {
  return renderModel(readTraceModel(json));
}

function renderModel(model: TraceModel): string {
  const analysis = analyseTrace(model);
  const { endUs, parallelism: par, critical: crit, criticalUs: critUs } = analysis;
  const layout: Layout = { x: (us) => LEFT + (us / endUs) * PLOT, endUs };
  const colour = new Map(model.nodes.map((n, i) => [n.pid, PALETTE[i % PALETTE.length]!]));
  const onPath = new Set(crit);

  const out: string[] = [];
  let y = 28;
  out.push(
    `<text x="16" y="${y}" font-size="17" font-weight="bold" fill="#111">mpmake build timeline</text>`,
  );
  y += 20;
  const facts = [
    `${model.jobs.length} jobs on ${model.nodes.length} node${model.nodes.length === 1 ? '' : 's'}`,
    `make ran ${seconds(endUs)}`,
    `jobs running at once: peak ${par.peak}, mean ${par.mean.toFixed(2)}` +
      (model.slots !== undefined ? ` of ${model.slots} slots (-j)` : ''),
    `critical path ${seconds(critUs)} (${Math.round((critUs / endUs) * 100)}% of the build)`,
  ];
  if (model.exitCode !== undefined && model.exitCode !== 0)
    facts.push(`make exit ${model.exitCode}`);
  if (model.startedAt) facts.push(`started ${model.startedAt}`);
  out.push(`<text x="16" y="${y}" font-size="12" fill="#333">${xmlText(facts.join(' · '))}</text>`);

  // Legend: the nodes' colours and the critical path's outline.
  y += 22;
  let lx = 16;
  for (const n of model.nodes) {
    const label = xmlText(clip(n.name, 28));
    out.push(
      `<rect class="legend" x="${lx}" y="${y - 10}" width="12" height="12" fill="${colour.get(n.pid)}"/>`,
      `<text x="${lx + 17}" y="${y}" font-size="12" fill="#222">${label}</text>`,
    );
    lx += 30 + Math.min(28, n.name.length) * 7;
  }
  out.push(
    `<rect class="legend" x="${lx}" y="${y - 10}" width="12" height="12" fill="#fff" stroke="#000" stroke-width="2"/>`,
    `<text x="${lx + 17}" y="${y}" font-size="12" fill="#222">on the critical path</text>`,
  );

  // The timeline: one row per node slot.
  y += 16;
  const timelineTop = y;
  const rowY = new Map<string, number>();
  let lastPid: number | undefined;
  model.rows.forEach((r, i) => {
    if (lastPid !== undefined && r.pid !== lastPid) y += NODE_GAP;
    rowY.set(`${r.pid}/${r.tid}`, y);
    if (i % 2 === 0) {
      out.push(
        `<rect class="row" x="${LEFT}" y="${y}" width="${PLOT}" height="${ROW}" fill="#f4f4f4"/>`,
      );
    }
    if (r.pid !== lastPid) {
      out.push(
        `<text x="12" y="${y + 13}" font-size="12" font-weight="bold" fill="${colour.get(r.pid)}">${xmlText(clip(r.node, 18))}</text>`,
      );
    }
    out.push(
      `<text x="${LEFT - 8}" y="${y + 13}" font-size="11" text-anchor="end" fill="#444">${xmlText(r.slot)}</text>`,
    );
    lastPid = r.pid;
    y += ROW;
  });
  const timelineBottom = y;
  const grid: string[] = [];
  axis(grid, layout, timelineBottom + 4, timelineTop);
  out.push(...grid);

  for (const j of model.jobs) {
    const top = rowY.get(`${j.pid}/${j.tid}`);
    if (top === undefined) continue;
    const x = layout.x(j.startUs);
    const w = Math.max(1, layout.x(j.endUs) - x);
    const node = model.rows.find((r) => r.pid === j.pid && r.tid === j.tid);
    const outline = onPath.has(j) ? ' stroke="#000" stroke-width="2"' : '';
    out.push(
      `<rect class="job" x="${px(x)}" y="${top + 2}" width="${px(w)}" height="${BAR}" rx="2" fill="${colour.get(j.pid)}"${outline}>` +
        `<title>${jobTitle(j, node?.node ?? '', node?.slot ?? '')}</title></rect>`,
    );
    const chars = Math.floor((w - 6) / 6);
    if (chars >= 4) {
      out.push(
        `<text x="${px(x + 3)}" y="${top + 13}" font-size="10" font-family="${MONO}" fill="#fff" pointer-events="none">${xmlText(clip(j.name, chars))}</text>`,
      );
    }
  }
  // The chain itself: from each critical job's end to the next one's start.
  const links: string[] = [];
  for (let i = 1; i < crit.length; i++) {
    const a = crit[i - 1]!;
    const b = crit[i]!;
    const ay = (rowY.get(`${a.pid}/${a.tid}`) ?? 0) + ROW / 2;
    const by = (rowY.get(`${b.pid}/${b.tid}`) ?? 0) + ROW / 2;
    links.push(`M${px(layout.x(a.endUs))},${ay} L${px(layout.x(b.startUs))},${by}`);
  }
  if (links.length > 0) {
    out.push(
      `<path class="critical-path" d="${links.join(' ')}" fill="none" stroke="#000" stroke-width="1.5" stroke-dasharray="3 2"/>`,
    );
  }

  // Jobs running at once: a step chart with the -j line and the mean.
  y = timelineBottom + 48;
  out.push(
    `<text x="16" y="${y}" font-size="14" font-weight="bold" fill="#111">Jobs running at once</text>`,
  );
  const chartTop = y + 14;
  const chartBottom = chartTop + CHART;
  const yMax = Math.max(1, par.peak, model.slots ?? 0);
  const cy = (n: number): number => chartBottom - (n / yMax) * CHART;
  const yStep = Math.max(1, Math.ceil(tickStep(yMax, 5)));
  for (let n = 0; n <= yMax; n += yStep) {
    out.push(
      `<line x1="${LEFT}" y1="${px(cy(n))}" x2="${LEFT + PLOT}" y2="${px(cy(n))}" stroke="#eee" stroke-width="1"/>`,
      `<text x="${LEFT - 8}" y="${px(cy(n) + 4)}" font-size="11" text-anchor="end" fill="#444">${n}</text>`,
    );
  }
  const chartAxis: string[] = [];
  axis(chartAxis, layout, chartBottom, chartTop);
  out.push(...chartAxis);
  const steps = runningSteps(model.jobs.map((j) => ({ start: j.startUs, end: j.endUs })));
  if (steps.length > 0) {
    let d = `M${px(layout.x(steps[0]!.t))},${px(cy(0))}`;
    let level = 0;
    for (const s of steps) {
      const x = px(layout.x(s.t));
      d += ` L${x},${px(cy(level))} L${x},${px(cy(s.n))}`;
      level = s.n;
    }
    out.push(
      `<path class="parallelism" d="${d} Z" fill="#4e79a7" fill-opacity="0.3" stroke="#4e79a7" stroke-width="1.5"/>`,
    );
  }
  if (model.slots !== undefined) {
    out.push(
      `<line x1="${LEFT}" y1="${px(cy(model.slots))}" x2="${LEFT + PLOT}" y2="${px(cy(model.slots))}" stroke="#e15759" stroke-width="1" stroke-dasharray="6 3"/>`,
      `<text x="${LEFT + PLOT}" y="${px(cy(model.slots) - 4)}" font-size="11" text-anchor="end" fill="#e15759"${HALO}>-j ${model.slots}</text>`,
    );
  }
  out.push(
    `<line x1="${LEFT}" y1="${px(cy(par.mean))}" x2="${LEFT + PLOT}" y2="${px(cy(par.mean))}" stroke="#333" stroke-width="1" stroke-dasharray="2 3"/>`,
    `<text x="${LEFT + PLOT}" y="${px(cy(par.mean) + 13)}" font-size="11" text-anchor="end" fill="#333"${HALO}>mean ${par.mean.toFixed(2)}</text>`,
  );

  // The critical path, listed.
  y = chartBottom + 52;
  out.push(
    `<text x="16" y="${y}" font-size="14" font-weight="bold" fill="#111">Critical path: ${crit.length} job${crit.length === 1 ? '' : 's'}, ${seconds(critUs)} of ${seconds(endUs)}</text>`,
  );
  y += 18;
  for (const line of [
    'The longest chain of jobs that ran one after another (each started when or after the previous one ended).',
    'Where these jobs waited for each other, the build cannot finish sooner: split the long ones, or what they wait for.',
    saturationNote(analysis, model.slots),
  ]) {
    if (line === undefined) continue;
    out.push(`<text x="16" y="${y}" font-size="12" fill="#333">${xmlText(line)}</text>`);
    y += LINE;
  }
  y += 8;
  const cols = [16, 56, 136, 216, 400];
  const header = ['#', 'start', 'ran', 'node, slot', 'command'];
  out.push(
    `<text font-size="12" font-weight="bold" fill="#111">${header
      .map((h, i) => `<tspan x="${cols[i]}" y="${y}">${h}</tspan>`)
      .join('')}</text>`,
  );
  y += LINE;
  const listed = crit.slice(0, LIST_MAX);
  listed.forEach((j, i) => {
    const row = model.rows.find((r) => r.pid === j.pid && r.tid === j.tid);
    const cells = [
      String(i + 1),
      seconds(j.startUs),
      seconds(j.endUs - j.startUs),
      clip(`${row?.node ?? ''}, ${row?.slot ?? ''}`, 26),
      clip(j.command, 100),
    ];
    out.push(
      `<text class="critical-job" font-size="12" font-family="${MONO}" fill="#222">${cells
        .map((c, k) => `<tspan x="${cols[k]}" y="${y}">${xmlText(c)}</tspan>`)
        .join('')}</text>`,
    );
    y += LINE;
  });
  if (crit.length > listed.length) {
    out.push(
      `<text x="16" y="${y}" font-size="12" fill="#333">… and ${crit.length - listed.length} more</text>`,
    );
    y += LINE;
  }
  if (model.jobs.length === 0) {
    out.push(`<text x="16" y="${y}" font-size="12" fill="#333">No jobs in this trace.</text>`);
    y += LINE;
  }
  const height = y + 16;
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="${FONT}">\n` +
    `<rect class="background" x="0" y="0" width="${WIDTH}" height="${height}" fill="#fff"/>\n` +
    out.join('\n') +
    `\n</svg>\n`
  );
}
