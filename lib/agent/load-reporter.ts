import type { LoadMessage } from '../protocol/messages.js';

/** Clients hear from the agent at least this often. */
export const LOAD_INTERVAL_MS = 1000;

/**
 * Publishes the node's load: every LOAD_INTERVAL_MS, and soon after each
 * change of running/queued counts. Changes within one turn of the event
 * loop are coalesced into one report.
 */
export class LoadReporter {
  private timer: NodeJS.Timeout | undefined;
  private pending: NodeJS.Immediate | undefined;

  constructor(
    private readonly snapshot: () => LoadMessage,
    private readonly publish: (load: LoadMessage) => void,
    private readonly intervalMs = LOAD_INTERVAL_MS,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => this.publish(this.snapshot()), this.intervalMs);
    this.timer.unref();
  }

  /** Running or queued changed: report it on the next turn. */
  changed(): void {
    if (this.pending !== undefined || this.timer === undefined) return;
    this.pending = setImmediate(() => {
      this.pending = undefined;
      this.publish(this.snapshot());
    });
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.pending !== undefined) clearImmediate(this.pending);
    this.pending = undefined;
  }
}
