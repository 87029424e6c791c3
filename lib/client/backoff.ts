/** Jittered exponential backoff for reconnects (grpc-js BackoffTimeout style). */
export class Backoff {
  private nextMs: number;
  constructor(
    private readonly initialMs = 250,
    private readonly maxMs = 10_000,
    private readonly multiplier = 1.6,
    private readonly jitter = 0.2,
    private readonly random: () => number = Math.random,
  ) {
    this.nextMs = initialMs;
  }

  /** The delay before the next attempt; each call grows the following one. */
  next(): number {
    const base = this.nextMs;
    this.nextMs = Math.min(this.maxMs, base * this.multiplier);
    return Math.round(base * (1 + this.jitter * (this.random() * 2 - 1)));
  }

  reset(): void {
    this.nextMs = this.initialMs;
  }
}
