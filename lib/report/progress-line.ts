import type { JobEndEvent, JobStartEvent } from '../coordinator/build-events.js';

/** Moves to the start of the line and erases it. */
export const ERASE = '\r\x1b[K';

export interface ProgressLineOptions {
  /** The clock, ms. */
  now: () => number;
  /** Where the line goes (the coordinator's stderr, a terminal). */
  write: (text: string) => void;
  /**
   * The terminal's width: a longer line would wrap and could not be erased.
   * 0 (a pseudo-terminal no one sized, as under `script` without a
   * terminal) counts as 80.
   */
  columns: () => number;
  /** The nodes' slots and last load reports. */
  nodes: () => ReadonlyArray<{ id: string; slots: number; running: number; queued: number }>;
  /**
   * How many lines the build is expected to have (make does not say), and
   * where that figure comes from ("the last build"). Without it the line
   * shows no total, percentage or time left.
   */
  expected?: { total: number; from: string } | undefined;
  /** Without `expected`: why there is no total ("no history for this tree; …"), shown after the count. */
  noTotal?: string | undefined;
  /** Redraw only after this long without a job event. Default 150. */
  quietMs?: number;
  /** Redraw at most this often. Default 200. */
  minRedrawMs?: number;
  /** The rate counts jobs that ended this recently. Default 5000. */
  rateWindowMs?: number;
  /**
   * After a line was given back to the client, whose shim runs it and may
   * write at any time, stay off this long. Default 2000.
   */
  localHoldMs?: number;
}

/**
 * The one-line progress view on a terminal: jobs done and running, each
 * node's running/slots, and the recent rate. Recipe output reaches the
 * terminal from the shims, not through us, so the line is only there while
 * nothing else writes: it is erased at every job event (a job starting or
 * ending is when output appears), redrawn by {@link tick} once the build
 * was quiet for a while with jobs running, and erased for good by
 * {@link finish}. The clock
 * and the writer are injected; a timer calls `tick`.
 */
export class ProgressLine {
  private readonly quietMs: number;
  private readonly minRedrawMs: number;
  private readonly rateWindowMs: number;
  private readonly localHoldMs: number;
  private readonly startedMs: number;
  private drawn = false;
  private finished = false;
  private lastActivityMs = -Infinity;
  private lastDrawMs = -Infinity;
  private holdUntilMs = -Infinity;
  private done = 0;
  private failed = 0;
  private local = 0;
  private running = 0;
  /** When recent jobs ended, oldest first. */
  private readonly ends: number[] = [];

  constructor(private readonly options: ProgressLineOptions) {
    this.quietMs = options.quietMs ?? 150;
    this.minRedrawMs = options.minRedrawMs ?? 200;
    this.rateWindowMs = options.rateWindowMs ?? 5000;
    this.localHoldMs = options.localHoldMs ?? 2000;
    this.startedMs = options.now();
  }

  /** Whether the line is on the terminal now. */
  get visible(): boolean {
    return this.drawn;
  }

  jobStart(_ev: JobStartEvent): void {
    this.activity();
    this.running++;
  }

  jobEnd(ev: JobEndEvent): void {
    this.activity();
    const now = this.options.now();
    this.running = Math.max(0, this.running - 1);
    this.done++;
    if (ev.error !== undefined || ev.signal !== null || (ev.code !== null && ev.code !== 0)) {
      this.failed++;
    }
    if (ev.nodeId === 'local' && ev.code === null && ev.signal === null) {
      // The line runs in the shim from now on; its end is not seen.
      this.local++;
      this.holdUntilMs = now + this.localHoldMs;
    }
    this.ends.push(now);
  }

  /**
   * Something may write to the terminal now: erase the line, and keep it
   * off until the build has been quiet for a while.
   */
  activity(): void {
    this.erase();
    this.lastActivityMs = this.options.now();
  }

  /** Called by a timer: draws the line when the build has been quiet. */
  tick(): void {
    if (this.finished) return;
    const now = this.options.now();
    if (now - this.lastActivityMs < this.quietMs || now < this.holdUntilMs) return;
    // With none of our jobs running, make is reading makefiles or about to
    // start a job, and prints its own lines (echoes, `Entering directory`)
    // at moments no event shows.
    if (this.running === 0) return;
    if (this.drawn && now - this.lastDrawMs < this.minRedrawMs) return;
    this.options.write('\r' + this.render() + '\x1b[K');
    this.drawn = true;
    this.lastDrawMs = now;
  }

  /** Erases the line for good. */
  finish(): void {
    this.erase();
    this.finished = true;
  }

  /** The line's text, cut to the terminal's width. */
  render(): string {
    const now = this.options.now();
    while (this.ends.length > 0 && (this.ends[0] ?? now) <= now - this.rateWindowMs) {
      this.ends.shift();
    }
    const span = Math.min(this.rateWindowMs, Math.max(1000, now - this.startedMs));
    const rate = (this.ends.length * 1000) / span;
    const parts = [`mpmake: ${this.progress(now)}`];
    if (this.failed > 0) parts.push(`${this.failed} failed`);
    parts.push(`${this.running} running`);
    const nodes = this.options
      .nodes()
      .map((n) => `${n.id} ${n.running}/${n.slots}${n.queued > 0 ? `+${n.queued}q` : ''}`);
    if (this.local > 0) nodes.push(`local ${this.local}`);
    let text = parts.join(', ');
    if (nodes.length > 0) text += ' | ' + nodes.join(' ');
    text += ` | ${rate.toFixed(1)} jobs/s`;
    const width = Math.max(1, (this.options.columns() || 80) - 1);
    return text.length > width ? text.slice(0, width) : text;
  }

  /**
   * `37 done`, or with an expected total `37/120 done (31%), ~12 s left
   * (total from the last build)`: the time left at this build's pace so
   * far. A build that outgrows the total shows `120/120+`.
   */
  private progress(now: number): string {
    const expected = this.options.expected;
    if (!expected || expected.total <= 0) {
      const why = this.options.noTotal;
      return why === undefined ? `${this.done} done` : `${this.done} done (no total: ${why})`;
    }
    const { total } = expected;
    if (this.done >= total) return `${this.done}/${total}+ done (100%, more than ${expected.from})`;
    const pct = Math.floor((this.done * 100) / total);
    let left = '';
    if (this.done > 0) {
      const leftMs = ((now - this.startedMs) * (total - this.done)) / this.done;
      left = `, ~${formatDuration(leftMs)} left`;
    }
    return `${this.done}/${total} done (${pct}%${left}; total from ${expected.from})`;
  }

  private erase(): void {
    if (!this.drawn) return;
    this.options.write(ERASE);
    this.drawn = false;
  }
}

/** `12 s`, `3 min 5 s`, `1 h 02 min`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}
