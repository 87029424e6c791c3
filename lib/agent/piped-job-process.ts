import type { Readable } from 'node:stream';
import type { StreamId } from '../protocol/messages.js';
import { EXIT_IDLE_MS, JobProcess, type JobOutcome } from './job-process.js';

/**
 * What every job on pipes shares, however it was started: its output
 * streams, flow control, and when it is over. It is over when it has exited
 * and its streams have ended, except that a recipe may leave a background
 * child holding a pipe: once it has exited, output that stays silent for
 * EXIT_IDLE_MS (while we are not the ones holding it back, and while we
 * were looking) is given up on.
 */
export abstract class PipedJobProcess extends JobProcess {
  protected readonly streams: Readable[] = [];
  protected outcome: JobOutcome | undefined;
  protected paused = false;
  protected finished = false;
  private openStreams = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  /** Chunks read so far: tells whether anything came while the idle time was checked. */
  private chunks = 0;

  pause(): void {
    if (this.paused || this.finished) return;
    this.paused = true;
    for (const s of this.streams) s.pause();
    clearTimeout(this.idleTimer);
  }

  resume(): void {
    if (!this.paused || this.finished) return;
    this.paused = false;
    for (const s of this.streams) s.resume();
    this.armIdleTimer();
  }

  /**
   * Emits `readable`'s bytes as `stream` (or hands them to a function: not
   * the job's output) and counts it until it ends.
   */
  protected watch(stream: StreamId | ((bytes: Buffer) => void), readable: Readable): void {
    this.streams.push(readable);
    this.openStreams++;
    if (this.paused) readable.pause();
    let open = true;
    const closed = (): void => {
      if (!open) return;
      open = false;
      this.openStreams--;
      this.maybeFinish();
    };
    readable.on('data', (bytes: Buffer) => {
      if (this.finished) return;
      this.chunks++;
      if (typeof stream === 'function') stream(bytes);
      else this.emit('data', stream, bytes);
      this.armIdleTimer();
    });
    readable.once('end', closed);
    readable.once('close', closed);
    readable.on('error', closed);
  }

  /** The process is gone: its output ends now or after the idle time. */
  protected exited(outcome: JobOutcome): void {
    this.outcome = outcome;
    this.armIdleTimer();
    this.maybeFinish();
  }

  /** The job could not start: one message on stream 2, then exit status 127. */
  protected failedToStart(message: string): void {
    this.emit('data', 2, Buffer.from(message));
    this.outcome = { code: 127, signal: null };
    this.finish();
  }

  private armIdleTimer(): void {
    clearTimeout(this.idleTimer);
    if (this.outcome === undefined || this.paused || this.finished) return;
    this.idleTimer = setTimeout(() => this.finishIfStillIdle(), EXIT_IDLE_MS);
  }

  /**
   * The idle time is up, but it may have passed without our looking at the
   * streams: an agent that stalls (a loaded machine, a long turn of the
   * event loop) runs its due timers before it polls again, and a fast
   * job's whole output, waiting in the pipe, would be dropped. So look once
   * more (an immediate runs after the event loop's next poll of the
   * streams) and give up only if nothing came meanwhile.
   */
  private finishIfStillIdle(): void {
    const chunks = this.chunks;
    setImmediate(() => {
      if (this.chunks === chunks && !this.paused) this.finish();
    });
  }

  private maybeFinish(): void {
    if (this.outcome !== undefined && this.openStreams === 0) this.finish();
  }

  protected finish(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.idleTimer);
    for (const s of this.streams) s.destroy();
    this.emit('finish', this.outcome!);
  }
}
