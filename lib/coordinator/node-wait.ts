import type { Cluster } from './cluster.js';

/** The longest reconnect backoff (lib/client/backoff.ts). */
const BACKOFF_CAP_MS = 10_000;

/**
 * How long a line waits for a node to come before it fails: at least 30 s,
 * and three whole reconnect rounds (a connect attempt, its handshake time
 * limit, then the longest backoff), so a node slow to finish its handshake
 * on a loaded machine gets more than one try.
 */
export function nodeWaitBoundMs(connectTimeoutMs: number): number {
  return Math.max(30_000, 3 * (connectTimeoutMs + BACKOFF_CAP_MS));
}

interface Held {
  place: () => void;
  fail: (message: string) => void;
  gone: () => boolean;
  timer: NodeJS.Timeout;
  since: number;
}

/**
 * Lines that found no node ready while some configured node may still come
 * (connecting, in its checks, retrying): held in order until one is ready,
 * then placed; failed at once when every node is out for good, or after
 * the bound. Once a wait ran out, later lines fail at once until a node comes.
 */
export class NodeWait {
  private readonly held: Held[] = [];
  private expired = false;

  constructor(
    private readonly cluster: Cluster,
    private readonly boundMs: number,
  ) {
    const wake = (): void => this.wake();
    cluster.on('capacity', wake);
    cluster.on('nodes', wake);
  }

  /** Whether a line with no node ready should wait rather than fail. */
  get worthWaiting(): boolean {
    return !this.expired && this.cluster.coming.length > 0;
  }

  get size(): number {
    return this.held.length;
  }

  /** Holds a line: `place` once a node is ready, `fail` (with the message) if none comes. */
  hold(place: () => void, fail: (message: string) => void, gone: () => boolean): void {
    const h: Held = { place, fail, gone, since: Date.now(), timer: undefined! };
    h.timer = setTimeout(() => {
      this.expired = true;
      this.failAll();
    }, this.boundMs);
    h.timer.unref();
    this.held.push(h);
  }

  private wake(): void {
    if (this.cluster.readyNodes.length > 0) {
      this.expired = false;
      // In order; placing may hold a line again (at the end) if the node went at once.
      for (const h of this.held.splice(0)) {
        clearTimeout(h.timer);
        if (!h.gone()) h.place();
      }
    } else if (this.cluster.coming.length === 0) this.failAll();
  }

  private failAll(): void {
    const coming = this.cluster.coming;
    const out = this.cluster.nodes.filter((n) => !coming.includes(n));
    const said = (ns: typeof out): string =>
      ns.map((n) => `${n.address} (${n.reason ?? n.state})`).join(', ');
    for (const h of this.held.splice(0)) {
      clearTimeout(h.timer);
      if (h.gone()) continue;
      const waited = ((Date.now() - h.since) / 1000).toFixed(1);
      const message =
        coming.length > 0
          ? `no agent became ready within ${waited} s (the bound: ${this.boundMs / 1000} s; still trying: ${said(coming)}); check that \`mpm agent\` runs there and is not starved (a slow MUNGE handshake), or raise --mp-connect-timeout`
          : `every agent is out for good after ${waited} s of waiting: ${said(out)}; see the \`leaving out\` lines`;
      h.fail(`${message}; --mp-no-fallback is set`);
    }
  }
}
