import { closeSync, constants, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tracer } from '../trace.js';

const trace = tracer('jobserver');

/**
 * The jobserver pool mpmake owns for its make: a FIFO (in mpmake's private
 * run directory, or where make 4.4 would put its own), which mpmake holds
 * open O_RDWR|O_NONBLOCK. make gets it as make would have made it: a read
 * end and a write end of its own (`--jobserver-auth=3,4`, see `openEnds`),
 * or named as `fifo:PATH` for make 4.4. Node cannot create an anonymous
 * pipe, and the socketpair behind `stdio: 'pipe'` is not something make can
 * use as a jobserver.
 *
 * The pool holds slots-1 one-byte tokens (every make holds one implicit
 * slot). It can grow and shrink while make runs: growing writes tokens,
 * shrinking takes tokens back as they return (a debt), so the build follows
 * the cluster's capacity. Every token is counted out and back.
 */
export class JobserverPool {
  readonly fd: number;
  readonly path: string;
  /** Tokens that should be in circulation (in the pool or held by clients). */
  private circulating = 0;
  /** Tokens still to take back after a shrink. */
  private debt = 0;
  private added = 0;
  private removed = 0;
  /** Tokens written again after clients died holding them. */
  refilled = 0;

  /** Creates the FIFO `dir/name` (mkfifo's error, if any, is thrown). */
  constructor(dir: string, slots: number, name = 'jobserver') {
    // As make writes it (`./GMfifo…` for MAKE_TMPDIR=.): no normalising.
    this.path = dir.endsWith('/') ? dir + name : `${dir}/${name}`;
    execFileSync('mkfifo', ['-m', '0600', this.path], { stdio: 'ignore' });
    this.fd = openSync(this.path, constants.O_RDWR | constants.O_NONBLOCK);
    this.resize(slots);
  }

  /** Slots the pool stands for now: tokens plus the implicit one. */
  get slots(): number {
    return this.circulating - this.debt + 1;
  }

  /** Makes the pool stand for `slots` (at least 1). */
  resize(slots: number): void {
    const want = Math.max(0, slots - 1);
    const have = this.circulating - this.debt;
    if (want > have) {
      // Cancel debt first: those tokens are still out there.
      const fromDebt = Math.min(this.debt, want - have);
      this.debt -= fromDebt;
      const n = want - have - fromDebt;
      if (n > 0) {
        writeSync(this.fd, Buffer.alloc(n, '+'));
        this.circulating += n;
        this.added += n;
      }
    } else if (want < have) {
      this.debt += have - want;
      this.absorb();
    }
    trace(`pool: ${this.slots} slots (${this.circulating} tokens circulating, debt ${this.debt})`);
  }

  /** Takes back owed tokens that are in the pool now. */
  absorb(): void {
    if (this.debt <= 0) return;
    const got = this.take(this.debt);
    this.debt -= got;
    this.circulating -= got;
    this.removed += got;
  }

  /**
   * Counts the tokens in the pool now (takes them and puts them straight
   * back), so an audit can compare with what is in circulation.
   */
  count(): number {
    const n = this.take(Number.MAX_SAFE_INTEGER);
    if (n > 0) writeSync(this.fd, Buffer.alloc(n, '+'));
    return n;
  }

  /**
   * A read end (O_NONBLOCK, as make sets its own) and a write end of their
   * own, as make's pipe(2) gives it; the caller closes them once handed on.
   */
  openEnds(): [number, number] {
    const r = openSync(this.path, constants.O_RDONLY | constants.O_NONBLOCK);
    return [r, openSync(this.path, constants.O_WRONLY)];
  }

  /** Tokens in circulation (in the pool or held by clients). */
  get inCirculation(): number {
    return this.circulating;
  }

  /**
   * Puts back tokens a client took and never returned (it died holding
   * them), so the rest of the build keeps its parallelism.
   */
  refill(n: number): void {
    if (n <= 0) return;
    writeSync(this.fd, Buffer.alloc(n, '+'));
    this.refilled += n;
    trace(`pool: refilled ${n} lost tokens`);
  }

  /**
   * At the end of the build: takes every token out of the pool and says how
   * many there were against how many should be.
   */
  drain(): { found: number; expected: number } {
    const found = this.take(Number.MAX_SAFE_INTEGER);
    return { found, expected: this.circulating };
  }

  private take(max: number): number {
    const buf = Buffer.alloc(Math.min(max, 4096));
    let got = 0;
    while (got < max) {
      let n: number;
      try {
        n = readSync(this.fd, buf, 0, Math.min(buf.length, max - got), null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') break;
        throw err;
      }
      if (n <= 0) break;
      got += n;
    }
    return got;
  }

  /** Tokens written in after the start, taken back, and refilled. */
  get stats(): { added: number; removed: number; refilled: number } {
    return { added: this.added, removed: this.removed, refilled: this.refilled };
  }

  /** Closes the pool and removes its FIFO. */
  close(): void {
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}
