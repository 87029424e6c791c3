/** A reservation in a QueueBudget; `release` may be called any number of times. */
export interface Reservation {
  readonly bytes: number;
  release(): void;
}

/**
 * Bytes held by jobs waiting for a slot, per client and in all, each
 * bounded: a client cannot make the agent hold more than `perClient` bytes
 * of queued jobs, and all clients together not more than `total`. A job
 * reserves its bytes when admitted and releases them when it starts or
 * leaves the queue.
 */
export class QueueBudget {
  private used = 0;
  private readonly byClient = new Map<object, number>();

  constructor(
    readonly perClient: number,
    readonly total: number,
  ) {}

  /** Bytes reserved now, by everyone. */
  get usedBytes(): number {
    return this.used;
  }

  /**
   * Reserves `bytes` for `client`, or says why not: the reason names the
   * budget and the agent option that sets it.
   */
  reserve(client: object, bytes: number): Reservation | string {
    const mine = this.byClient.get(client) ?? 0;
    if (mine + bytes > this.perClient) {
      return (
        `queued jobs of this client would hold ${mine + bytes} bytes, over the limit of ` +
        `${this.perClient} (--max-queued-bytes-per-client)`
      );
    }
    if (this.used + bytes > this.total) {
      return (
        `queued jobs of all clients would hold ${this.used + bytes} bytes, over the limit of ` +
        `${this.total} (--max-queued-bytes)`
      );
    }
    this.byClient.set(client, mine + bytes);
    this.used += bytes;
    let held = true;
    return {
      bytes,
      release: () => {
        if (!held) return;
        held = false;
        this.used -= bytes;
        const left = (this.byClient.get(client) ?? bytes) - bytes;
        if (left > 0) this.byClient.set(client, left);
        else this.byClient.delete(client);
      },
    };
  }
}
