import { MAX_FAIR_USERS } from '../protocol/wire-limits.js';

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

/** One user's clients (connections) in round-robin order. */
class UserRing<J> {
  clients: ClientQueue<J>[] = [];
  next = 0;
  /** Jobs of this user waiting, all its clients together. */
  queued = 0;
  /** Jobs of this user holding a slot. */
  running = 0;
  /** Starts this user has had; lifted when it comes back with nothing waiting (see JobScheduler). */
  served = 0;

  constructor(readonly user: string) {}
}

/**
 * The node's slots and its fair queue. At most `slots` jobs run at once;
 * beyond that jobs wait, never refused for being busy. A freed slot goes to
 * the waiting user served least so far (in starts; ties in round-robin
 * order), then to that user's clients (builds) round-robin, FIFO within a
 * client: a user with two builds gets one user's share, and a client with
 * 500 jobs queued cannot starve one with 5. While every user waits this is
 * round-robin; the difference is a user whose next job comes a moment after
 * its turn went by (a build's serial steps: archive, link, test): it is
 * served at the next free slot rather than a whole round later. It banks at
 * most that one turn while it has nothing waiting: coming back (or new),
 * its count is lifted to one less than the most any user had when served
 * (`round`, which never goes back), so it cannot then take a run of turns;
 * a user that had every free slot to itself before others came is passed
 * over until they have had as many.
 *
 * `start` is called synchronously when a job gets a slot; the job keeps the
 * slot until `release(job)`, which may be called from inside `start`.
 * `onChange` is called after every change of the running or queued counts.
 */
/** The queue as one user sees it (see JobScheduler.fairShare). */
export interface FairShare {
  /** The user's jobs holding a slot here. */
  mineRunning: number;
  /** The user's jobs waiting here. */
  mineQueued: number;
  /** Each other user's waiting jobs, largest first (users with none left out). */
  others: number[];
}

export class JobScheduler<J> {
  /** Jobs holding a slot, and the user they count for. */
  private readonly running = new Map<J, UserRing<J>>();
  private readonly queues = new Map<object, ClientQueue<J>>();
  private readonly owners = new Map<ClientQueue<J>, UserRing<J>>();
  private readonly users = new Map<string, UserRing<J>>();
  /** Users in round-robin order; `next` is the one whose turn is next. */
  private ring: UserRing<J>[] = [];
  private next = 0;
  /** The most starts a user had when it was served (never goes back). */
  private round = 0;
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
    return [...this.running.keys()];
  }

  /** How many of `client`'s jobs are waiting. */
  queuedFor(client: object): number {
    return this.queues.get(client)?.length ?? 0;
  }

  /**
   * Queues `job` for `client`, which belongs to `user` (its first job
   * decides; default: a user of its own); it starts at once when a slot is free.
   */
  submit(client: object, job: J, user?: string): void {
    let queue = this.queues.get(client);
    if (!queue) {
      queue = new ClientQueue<J>(client);
      this.queues.set(client, queue);
      const key = user ?? queue;
      let owner = typeof key === 'string' ? this.users.get(key) : undefined;
      if (!owner) {
        owner = new UserRing<J>(typeof key === 'string' ? key : '');
        if (typeof key === 'string') this.users.set(key, owner);
        // A newcomer joins just before the user whose turn is next, so it
        // waits one full round, like everyone else.
        this.ring.splice(this.next, 0, owner);
        this.next = (this.next + 1) % this.ring.length;
      }
      // The same within a user: a new build waits for the user's next turn.
      owner.clients.splice(owner.next, 0, queue);
      owner.next = (owner.next + 1) % owner.clients.length;
      this.owners.set(queue, owner);
    }
    queue.push(job);
    const owner = this.owners.get(queue)!;
    if (owner.queued === 0) owner.served = Math.max(owner.served, this.round - 1);
    owner.queued++;
    this.waiting++;
    this.pump();
  }

  /** `job` no longer holds its slot (it ended, or never really started). */
  release(job: J): void {
    const owner = this.running.get(job);
    if (!owner) return;
    this.running.delete(job);
    owner.running--;
    this.pump();
  }

  /** Takes a waiting job out of the queue; false when it was not waiting. */
  removeQueued(client: object, job: J): boolean {
    const queue = this.queues.get(client);
    const removed = queue?.remove(job) ?? false;
    if (removed) {
      this.owners.get(queue!)!.queued--;
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
    const owner = this.owners.get(queue)!;
    this.owners.delete(queue);
    owner.next = removeFromRing(owner.clients, queue, owner.next);
    if (owner.clients.length === 0) {
      this.users.delete(owner.user);
      this.next = removeFromRing(this.ring, owner, this.next);
    }
    const dropped = queue.drain();
    owner.queued -= dropped.length;
    this.waiting -= dropped.length;
    if (dropped.length > 0) this.onChange();
    return dropped;
  }

  /**
   * The queue as `user` sees it. Served round-robin, a job that is the
   * user's k-th in line here starts after min(q, k) of each other user's q
   * waiting jobs, however long the queue is in all: placement needs these
   * counts, not the total, to send each user's jobs where that user's wait
   * is least (so that every user's jobs finish about together).
   */
  fairShare(user: string): FairShare {
    const mine = this.users.get(user);
    const others: number[] = [];
    for (const ring of this.ring) if (ring !== mine && ring.queued > 0) others.push(ring.queued);
    others.sort((a, b) => b - a);
    if (others.length > MAX_FAIR_USERS) others.length = MAX_FAIR_USERS;
    return { mineRunning: mine?.running ?? 0, mineQueued: mine?.queued ?? 0, others };
  }

  private takeNext(): { job: J; owner: UserRing<J> } | undefined {
    // The waiting user served least; among equals, the first in turn.
    let at = -1;
    for (let i = 0; i < this.ring.length; i++) {
      const k = (this.next + i) % this.ring.length;
      const ring = this.ring[k]!;
      if (ring.queued > 0 && (at < 0 || ring.served < this.ring[at]!.served)) at = k;
    }
    if (at < 0) return undefined;
    const owner = this.ring[at]!;
    for (let k = 0; k < owner.clients.length; k++) {
      const c = (owner.next + k) % owner.clients.length;
      const job = owner.clients[c]!.shift();
      if (job !== undefined) {
        owner.next = (c + 1) % owner.clients.length;
        this.next = (at + 1) % this.ring.length;
        this.waiting--;
        owner.queued--;
        this.round = Math.max(this.round, owner.served);
        owner.served++;
        return { job, owner };
      }
    }
    return undefined;
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.running.size < this.slots) {
        const next = this.takeNext();
        if (next === undefined) break;
        this.running.set(next.job, next.owner);
        next.owner.running++;
        this.start(next.job);
      }
    } finally {
      this.pumping = false;
    }
    this.onChange();
  }
}

/** Removes `item` from a round-robin ring; returns whose turn is next now. */
function removeFromRing<T>(list: T[], item: T, next: number): number {
  const at = list.indexOf(item);
  if (at < 0) return next;
  list.splice(at, 1);
  if (at < next) next--;
  return next >= list.length ? 0 : next;
}
