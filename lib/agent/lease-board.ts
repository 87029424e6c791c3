import {
  chmodSync,
  closeSync,
  fchmodSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Must match LEASE_CHECK in lease.h. */
const LEASE_CHECK = 0x6d706d616b656c73n;
const RECORD_BYTES = 16;
/**
 * How fast the agent lets its estimate of a client's fastest heartbeat
 * delivery creep up (ms per ms): clocks of two machines drift apart, but
 * by much less than this.
 */
const DRIFT_ALLOWANCE = 0.001;

/** CLOCK_MONOTONIC in ns: the clock lease.h reads (libuv's hrtime is it, on Linux). */
export const monotonicNs = (): bigint => process.hrtime.bigint();

/**
 * The agent's lease file (see lib/agent/lease.h): one 16-byte record per
 * client connection, written only here, read by the job supervisors
 * (mpmake-spawnd, mpmake-exec) on their own. Records are never reused, so a
 * job of a closed connection can never be kept alive by a new one.
 */
export class LeaseBoard {
  readonly path: string;
  private readonly dir: string;
  private readonly fd: number;
  private nextSlot = 0;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'mpm-lease-'));
    // Readable by the jobs' users (--user): it holds deadlines, nothing else.
    chmodSync(this.dir, 0o711);
    this.path = join(this.dir, 'leases');
    this.fd = openSync(this.path, 'wx', 0o644);
    fchmodSync(this.fd, 0o644);
  }

  /** A new record, valid for `ms` from now. */
  open(ms: number): Lease {
    const lease = new Lease(this, this.nextSlot++);
    lease.renewFor(ms);
    return lease;
  }

  /** @internal */
  write(slot: number, deadlineNs: bigint): void {
    const rec = Buffer.alloc(RECORD_BYTES);
    rec.writeBigUInt64LE(deadlineNs, 0);
    rec.writeBigUInt64LE(deadlineNs ^ LEASE_CHECK, 8);
    writeSync(this.fd, rec, 0, RECORD_BYTES, slot * RECORD_BYTES);
  }

  close(): void {
    try {
      closeSync(this.fd);
    } catch {
      // closed already
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * One client connection's lease. Renewed by the client's heartbeats; a
 * heartbeat that reaches us late (we were frozen, or it sat in a buffer)
 * buys only what is left of the lease it was sent for, so the client's
 * reckoning, "lease + grace after my last heartbeat", holds on its own
 * clock whatever happened to the heartbeat on the way.
 */
export class Lease {
  private deadlineNs = 0n;
  private revoked = false;
  /** Times the lease ran out before it was renewed (its jobs were killed then). */
  lapses = 0;
  /** Smallest (our clock at reading) - (client's clock at sending) seen, ms. */
  private minLagMs = Infinity;
  private minLagAtMs = 0;

  constructor(
    private readonly board: LeaseBoard,
    readonly slot: number,
  ) {}

  /** Extends the lease to `ms` from now (never shortens it). */
  renewFor(ms: number): void {
    if (ms <= 0 || this.revoked) return;
    const now = monotonicNs();
    const deadline = now + BigInt(Math.floor(ms * 1e6));
    if (deadline <= this.deadlineNs) return;
    if (this.deadlineNs !== 0n && this.deadlineNs <= now) this.lapses++;
    this.deadlineNs = deadline;
    this.board.write(this.slot, deadline);
  }

  /**
   * A heartbeat the client sent at `sentMs` on its own monotonic clock,
   * buying `leaseMs`. Offsets between the clocks cancel out: only how much
   * later than the fastest heartbeat so far this one arrives counts.
   */
  renewFromHeartbeat(sentMs: number, leaseMs: number): void {
    const nowMs = Number(monotonicNs()) / 1e6;
    const lag = nowMs - sentMs;
    const crept = this.minLagMs + (nowMs - this.minLagAtMs) * DRIFT_ALLOWANCE;
    if (lag <= crept) {
      this.minLagMs = lag;
      this.minLagAtMs = nowMs;
    } else {
      this.minLagMs = crept;
      this.minLagAtMs = nowMs;
    }
    this.renewFor(leaseMs - (lag - this.minLagMs));
  }

  /** Whether the lease has run out (or was revoked). */
  get lapsed(): boolean {
    return this.deadlineNs <= monotonicNs();
  }

  /** The client is gone: every job under this lease is killed now. */
  revoke(): void {
    if (this.revoked) return;
    this.revoked = true;
    this.deadlineNs = 0n;
    this.board.write(this.slot, 0n);
  }
}

let shared: LeaseBoard | undefined;

/** This process's lease board, made on first use; removed at exit. */
export function sharedLeaseBoard(): LeaseBoard {
  if (!shared) {
    const board = new LeaseBoard();
    shared = board;
    process.once('exit', () => board.close());
  }
  return shared;
}
