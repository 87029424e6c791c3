/**
 * Connections from one source (an IPv4 address, an IPv6 /64) still
 * authenticating, at most: a newcomer beyond it pushes out the oldest of
 * its own source, so silent sockets cannot lock the others of that source
 * out.
 */
export const MAX_HANDSHAKES_PER_ADDRESS = 32;
/** Connections still authenticating, all sources together, by default. */
export const DEFAULT_MAX_HANDSHAKES = 256;

interface Entry<C> {
  conn: C;
  seq: number;
  source: string;
}

/**
 * The source a connection is counted under: the IPv4 address (also when
 * IPv4-mapped), or the /64 of an IPv6 address (a single host commonly holds
 * a whole /64).
 */
export function sourceOf(address: string | undefined): string {
  if (!address) return '?';
  const bare = address.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped) return mapped[1]!;
  if (!bare.includes(':')) return bare;
  const [head = '', tail] = bare.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups =
    tail === undefined
      ? h
      : [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

/**
 * The connections still authenticating, by source, oldest first. Admitting
 * never refuses the newcomer: over its source's limit, the oldest of that
 * source goes; over the global limit, the oldest of the source holding the
 * most goes. Authenticated connections are not counted and never chosen.
 */
export class PendingConnections<C> {
  private readonly bySource = new Map<string, Entry<C>[]>();
  private readonly entries = new Map<C, Entry<C>>();
  private seq = 0;

  constructor(
    readonly max: number,
    readonly perSource = MAX_HANDSHAKES_PER_ADDRESS,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Counts `conn` from `address`; returns the connections to close to make room for it. */
  admit(conn: C, address: string | undefined): C[] {
    const source = sourceOf(address);
    const evicted: C[] = [];
    const own = this.bySource.get(source);
    if (own && own.length >= this.perSource) evicted.push(this.evictOldest(source));
    else if (this.entries.size >= this.max) {
      const largest = this.largestSource();
      if (largest !== undefined) evicted.push(this.evictOldest(largest));
    }
    const entry = { conn, seq: this.seq++, source };
    this.entries.set(conn, entry);
    const list = this.bySource.get(source);
    if (list) list.push(entry);
    else this.bySource.set(source, [entry]);
    return evicted;
  }

  /** `conn` authenticated or closed: no longer counted. */
  remove(conn: C): void {
    const entry = this.entries.get(conn);
    if (!entry) return;
    this.entries.delete(conn);
    const list = this.bySource.get(entry.source)!;
    list.splice(list.indexOf(entry), 1);
    if (list.length === 0) this.bySource.delete(entry.source);
  }

  /** How many from the source of `address` are counted now. */
  countFrom(address: string | undefined): number {
    return this.bySource.get(sourceOf(address))?.length ?? 0;
  }

  private evictOldest(source: string): C {
    const oldest = this.bySource.get(source)![0]!.conn;
    this.remove(oldest);
    return oldest;
  }

  /** The source with the most connections; of equals, the one with the oldest. */
  private largestSource(): string | undefined {
    let best: Entry<C>[] | undefined;
    for (const list of this.bySource.values()) {
      if (
        !best ||
        list.length > best.length ||
        (list.length === best.length && list[0]!.seq < best[0]!.seq)
      ) {
        best = list;
      }
    }
    return best?.[0]?.source;
  }
}
