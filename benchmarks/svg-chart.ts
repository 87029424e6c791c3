/**
 * A small line chart as a standalone SVG string, written by hand (no
 * dependencies): axes with round ticks, one polyline with markers per
 * series, an optional label per point, a legend and notes under the plot.
 */

export interface ChartSeries {
  name: string;
  /** [x, y] pairs, drawn in order. */
  points: [number, number][];
  color: string;
  dashed?: boolean;
  /** Markers at each point (default true). */
  markers?: boolean;
  /** A short text drawn next to each point (same order as points), e.g. refusals. */
  labels?: (string | undefined)[];
}

export interface ChartOptions {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  series: ChartSeries[];
  /** Ticks on the x axis (default: every x of every series). */
  xTicks?: number[];
  /**
   * Rows of short texts under the x axis, one per x tick (same order), named
   * at the right: figures that belong to each point without cluttering the plot.
   */
  rows?: { name: string; color: string; cells: string[] }[];
  /** Lines of text under the plot. */
  notes?: string[];
  width?: number;
  height?: number;
}

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A step of 1, 2 or 5 × 10^k giving about `count` intervals up to `max`. */
export function niceStep(max: number, count = 6): number {
  if (!(max > 0)) return 1;
  const raw = max / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const m = raw / pow;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * pow;
}

const num = (n: number): string => String(Math.round(n * 100) / 100);

export function lineChart(o: ChartOptions): string {
  const width = o.width ?? 900;
  const notes = o.notes ?? [];
  const rows = o.rows ?? [];
  const rowsH = rows.length * 16;
  const plotH = (o.height ?? 560) - 150 - notes.length * 18;
  const height = plotH + 150 + rowsH + notes.length * 18;
  const left = 70;
  const top = o.subtitle ? 70 : 52;
  const legendW = 280;
  const plotW = width - left - legendW - 20;

  const xs = o.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = o.series.flatMap((s) => s.points.map((p) => p[1]));
  const xTicks = o.xTicks ?? [...new Set(xs)].sort((a, b) => a - b);
  const xMin = Math.min(0, ...xTicks, ...xs);
  const xMax = Math.max(...xTicks, ...xs);
  const yStep = niceStep(Math.max(...ys, 0) * 1.05);
  const yMax = Math.max(yStep, Math.ceil((Math.max(...ys, 0) * 1.05) / yStep) * yStep);
  const px = (x: number): number => left + ((x - xMin) / (xMax - xMin || 1)) * plotW;
  const py = (y: number): number => top + plotH - (y / yMax) * plotH;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="13">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${left}" y="28" font-size="17" font-weight="bold">${esc(o.title)}</text>`,
  );
  if (o.subtitle) out.push(`<text x="${left}" y="50" fill="#444">${esc(o.subtitle)}</text>`);

  // Grid and y ticks.
  for (let y = 0; y <= yMax + 1e-9; y += yStep) {
    const yy = py(y).toFixed(1);
    out.push(
      `<line x1="${left}" y1="${yy}" x2="${left + plotW}" y2="${yy}" stroke="#e3e3e3"/>`,
      `<text x="${left - 8}" y="${yy}" text-anchor="end" dominant-baseline="middle">${num(y)}</text>`,
    );
  }
  for (const x of xTicks) {
    const xx = px(x).toFixed(1);
    out.push(
      `<line x1="${xx}" y1="${top + plotH}" x2="${xx}" y2="${top + plotH + 5}" stroke="#333"/>`,
      `<text x="${xx}" y="${top + plotH + 20}" text-anchor="middle">${num(x)}</text>`,
    );
  }
  out.push(
    `<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="#333"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="#333"/>`,
    `<text x="${left + plotW / 2}" y="${top + plotH + 42 + rowsH}" text-anchor="middle">${esc(o.xLabel)}</text>`,
    `<text transform="translate(20 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`,
  );

  rows.forEach((row, r) => {
    const y = top + plotH + 36 + r * 16;
    xTicks.forEach((x, i) => {
      out.push(
        `<text x="${px(x).toFixed(1)}" y="${y}" text-anchor="middle" font-size="11" fill="${row.color}">${esc(row.cells[i] ?? '')}</text>`,
      );
    });
    out.push(
      `<text x="${left + plotW + 36}" y="${y}" font-size="11" fill="${row.color}">${esc(row.name)}</text>`,
    );
  });

  // Series.
  for (const s of o.series) {
    const pts = s.points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ');
    out.push(
      `<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="2.5"${s.dashed ? ' stroke-dasharray="7 5"' : ''}/>`,
    );
    s.points.forEach(([x, y], i) => {
      if (s.markers !== false) {
        out.push(
          `<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="4" fill="${s.color}"><title>${esc(s.name)}: ${num(x)}, ${num(y)}</title></circle>`,
        );
      }
      const label = s.labels?.[i];
      if (label) {
        out.push(
          `<text x="${(px(x) + 7).toFixed(1)}" y="${(py(y) + 16).toFixed(1)}" font-size="11" fill="${s.color}">${esc(label)}</text>`,
        );
      }
    });
  }

  // Legend.
  const lx = left + plotW + 20;
  o.series.forEach((s, i) => {
    const ly = top + 10 + i * 24;
    out.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 28}" y2="${ly}" stroke="${s.color}" stroke-width="2.5"${s.dashed ? ' stroke-dasharray="7 5"' : ''}/>`,
      `<text x="${lx + 36}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`,
    );
  });

  notes.forEach((n, i) => {
    out.push(
      `<text x="${left}" y="${top + plotH + 68 + rowsH + i * 18}" font-size="12" fill="#333">${esc(n)}</text>`,
    );
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
