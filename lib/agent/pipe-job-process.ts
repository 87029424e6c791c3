import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import type { StreamId } from '../protocol/messages.js';
import type { JobCommand } from './job-command.js';
import { EXIT_IDLE_MS, JobProcess, type JobOutcome } from './job-process.js';

/**
 * A job on pipes: stdout is stream 1, stderr stream 2, stdin /dev/null.
 *
 * The job is over when its process has exited and both pipes have closed,
 * except that a recipe may leave a background child holding a pipe: once the
 * process has exited, output that stays silent for EXIT_IDLE_MS (while we
 * are not the ones holding it back) is given up on.
 */
export class PipeJobProcess extends JobProcess {
  readonly pid: number | undefined;
  private readonly child: ChildProcess;
  private readonly streams: Readable[] = [];
  private openStreams = 2;
  private outcome: JobOutcome | undefined;
  private paused = false;
  private finished = false;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(command: JobCommand) {
    super();
    this.child = spawn(command.file, command.args, {
      cwd: command.cwd,
      env: command.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.pid = this.child.pid;
    this.watch(1, this.child.stdout!);
    this.watch(2, this.child.stderr!);
    this.child.once('exit', (code, signal) => {
      this.outcome = { code, signal };
      this.armIdleTimer();
      this.maybeFinish();
    });
    this.child.once('error', (err) => {
      // Only a failure to start leaves no pid; later errors come with an exit.
      if (this.child.pid !== undefined) return;
      this.emit('data', 2, Buffer.from(`mpm agent: cannot start job: ${err.message}\n`));
      this.outcome = { code: 127, signal: null };
      this.finish();
    });
  }

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

  private watch(stream: StreamId, readable: Readable): void {
    this.streams.push(readable);
    let open = true;
    const closed = (): void => {
      if (!open) return;
      open = false;
      this.openStreams--;
      this.maybeFinish();
    };
    readable.on('data', (bytes: Buffer) => {
      if (this.finished) return;
      this.emit('data', stream, bytes);
      this.armIdleTimer();
    });
    readable.once('end', closed);
    readable.once('close', closed);
    readable.on('error', closed);
  }

  /** After exit, (re)starts the silence timer; never while we hold output back. */
  private armIdleTimer(): void {
    clearTimeout(this.idleTimer);
    if (this.outcome === undefined || this.paused || this.finished) return;
    this.idleTimer = setTimeout(() => this.finish(), EXIT_IDLE_MS);
  }

  private maybeFinish(): void {
    if (this.outcome !== undefined && this.openStreams === 0) this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.idleTimer);
    for (const s of this.streams) s.destroy();
    this.emit('finish', this.outcome!);
  }
}
