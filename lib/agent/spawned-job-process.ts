import { closeSync, constants, openSync, unlinkSync } from 'node:fs';
import { Socket } from 'node:net';
import type { StreamId } from '../protocol/messages.js';
import { EXIT_IDLE_MS, JobProcess, killGroup, signalName, type JobOutcome } from './job-process.js';
import type { SpawnClient, SpawnRequest } from './spawn-client.js';

/**
 * A job on pipes, forked by the agent's spawner (see spawn-client.ts). Its
 * output arrives through FIFOs that the spawner opened for the job before
 * it started and holds until we have opened our read ends (we then unlink
 * the names and tell it). Like
 * PipeJobProcess, the job is over when it has exited and its output has
 * ended, or stayed silent for EXIT_IDLE_MS after the exit (a background
 * child may hold the pipe).
 */
export class SpawnedJobProcess extends JobProcess {
  private jobPid: number | undefined;
  private readonly streams: Socket[] = [];
  private keepers: number[] = [];
  private openStreams = 0;
  private outcome: JobOutcome | undefined;
  private paused = false;
  private finished = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private pendingSignal: NodeJS.Signals | undefined;

  constructor(spawner: SpawnClient, req: SpawnRequest) {
    super();
    const paths: { id: number; out: string; err: string | undefined } = {
      id: 0,
      out: '',
      err: undefined,
    };
    Object.assign(
      paths,
      spawner.spawn(req, {
        started: (pid) => {
          if (pid < 0) {
            this.emit('data', 2, Buffer.from(`mpm agent: cannot start job: errno ${-pid}\n`));
            this.outcome = { code: 127, signal: null };
            return this.finish();
          }
          this.jobPid = pid;
          try {
            this.watch(1, paths.out);
            if (paths.err) this.watch(2, paths.err);
            spawner.opened(paths.id);
          } catch (err) {
            // Never expected; the agent must survive it, and the job not run on unseen.
            killGroup(pid, 'SIGKILL');
            this.emit(
              'data',
              2,
              Buffer.from(`mpm agent: cannot read job output: ${(err as Error).message}\n`),
            );
          }
          if (this.paused) for (const s of this.streams) s.pause();
          if (this.pendingSignal) this.kill(this.pendingSignal);
        },
        exited: (code, signal) => {
          this.outcome = { code, signal: signal === null ? null : signalName(signal) };
          this.dropKeepers();
          this.armIdleTimer();
          this.maybeFinish();
        },
        dead: () => {
          if (this.outcome) return;
          this.outcome = { code: null, signal: 'SIGKILL' };
          this.finish();
        },
      }),
    );
  }

  get pid(): number | undefined {
    return this.jobPid;
  }

  override kill(signal: NodeJS.Signals): void {
    if (this.jobPid === undefined) this.pendingSignal = signal;
    else killGroup(this.jobPid, signal);
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

  private watch(stream: StreamId, path: string): void {
    // The spawner holds the FIFO open until we say we have it (opened()),
    // so output of a job already over is still there, and the EOF comes
    // once the job's own ends and the spawner's are closed.
    const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    unlinkSync(path); // both ends are open: the name is not needed any more
    const socket = new Socket({ fd, readable: true, writable: false });
    this.streams.push(socket);
    this.openStreams++;
    let open = true;
    const closed = (): void => {
      if (!open) return;
      open = false;
      this.openStreams--;
      this.maybeFinish();
    };
    socket.on('data', (bytes: Buffer) => {
      if (this.finished) return;
      this.emit('data', stream, bytes);
      this.armIdleTimer();
    });
    socket.once('end', closed);
    socket.once('close', closed);
    socket.on('error', closed);
  }

  private dropKeepers(): void {
    for (const fd of this.keepers) {
      try {
        closeSync(fd);
      } catch {
        // closed
      }
    }
    this.keepers = [];
  }

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
    this.dropKeepers();
    for (const s of this.streams) s.destroy();
    this.emit('finish', this.outcome!);
  }
}
