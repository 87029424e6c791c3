/** One client's jobs waiting for a slot, oldest first. */
class ClientQueue<J> {
  private items: (J | undefined)[] = [];
  private head = 0;

  constructor(readonly client: object) {}

  get length(): number {
    return this.items.length - this.head;
  }

  push(job: J): void {
    this.items.push(job);
  }

  shift(): J | undefined {
    if (this.head >= this.items.length) return undefined;
    const job = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return job;
  }

  remove(job: J): boolean {
    const at = this.items.indexOf(job, this.head);
    if (at < 0) return false;
    this.items.splice(at, 1);
    return true;
  }

  drain(): J[] {
    const jobs = this.items.slice(this.head) as J[];
    this.items = [];
    this.head = 0;
    return jobs;
  }
}

/**
 * The node's slots and its fair queue. At most `slots` jobs run at once;
 * beyond that jobs wait, never refused for being busy. A freed slot goes to
 * the clients round-robin, FIFO within a client, so a client with 500 jobs
 * queued cannot starve one with 5.
 *
 * `start` is called synchronously when a job gets a slot; the job keeps the
 * slot until `release(job)`, which may be called from inside `start`.
 * `onChange` is called after every change of the running or queued counts.
 */
export class JobScheduler<J> {
  private readonly running = new Set<J>();
  private readonly queues = new Map<object, ClientQueue<J>>();
  /** Clients in round-robin order; `next` is the one whose turn is next. */
  private ring: ClientQueue<J>[] = [];
  private next = 0;
  private waiting = 0;
  private pumping = false;

  constructor(
    readonly slots: number,
    private readonly start: (job: J) => void,
    private readonly onChange: () => void = () => {},
  ) {
    if (!Number.isInteger(slots) || slots < 1) throw new RangeError('slots must be >= 1');
  }

  get runningCount(): number {
    return this.running.size;
  }

  get queuedCount(): number {
    return this.waiting;
  }

  /** Jobs now holding a slot. */
  runningJobs(): J[] {
    return [...this.running];
  }

  /** How many of `client`'s jobs are waiting. */
  queuedFor(client: object): number {
    return this.queues.get(client)?.length ?? 0;
  }

  /** Queues `job` for `client`; it starts at once when a slot is free. */
  submit(client: object, job: J): void {
    let queue = this.queues.get(client);
    if (!queue) {
      queue = new ClientQueue<J>(client);
      this.queues.set(client, queue);
      // A newcomer joins just before the client whose turn is next, so it
      // waits one full round, like everyone else.
      this.ring.splice(this.next, 0, queue);
      this.next = (this.next + 1) % this.ring.length;
    }
    queue.push(job);
    this.waiting++;
    this.pump();
  }

  /** `job` no longer holds its slot (it ended, or never really started). */
  release(job: J): void {
    if (!this.running.delete(job)) return;
    this.pump();
  }

  /** Takes a waiting job out of the queue; false when it was not waiting. */
  removeQueued(client: object, job: J): boolean {
    const removed = this.queues.get(client)?.remove(job) ?? false;
    if (removed) {
      this.waiting--;
      this.onChange();
    }
    return removed;
  }

  /** Forgets `client`: returns its waiting jobs, which will never start. */
  dropClient(client: object): J[] {
    const queue = this.queues.get(client);
    if (!queue) return [];
    this.queues.delete(client);
    const at = this.ring.indexOf(queue);
    this.ring.splice(at, 1);
    if (at < this.next) this.next--;
    if (this.next >= this.ring.length) this.next = 0;
    const dropped = queue.drain();
    this.waiting -= dropped.length;
    if (dropped.length > 0) this.onChange();
    return dropped;
  }

  private takeNext(): J | undefined {
    for (let i = 0; i < this.ring.length; i++) {
      const at = (this.next + i) % this.ring.length;
      const job = this.ring[at]!.shift();
      if (job !== undefined) {
        this.next = (at + 1) % this.ring.length;
        this.waiting--;
        return job;
      }
    }
    return undefined;
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.running.size < this.slots) {
        const job = this.takeNext();
        if (job === undefined) break;
        this.running.add(job);
        this.start(job);
      }
    } finally {
      this.pumping = false;
    }
    this.onChange();
  }
}
