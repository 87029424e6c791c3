import { openSync, unlinkSync, constants as fsConstants } from 'node:fs';
import { constants } from 'node:os';
import { Socket } from 'node:net';
import type { InputWait, StreamId } from '../protocol/messages.js';
import { decodeFresh } from '../shim/shim-protocol.js';
import { signalName } from './job-process.js';
import { PipedJobProcess } from './piped-job-process.js';
import type { SpawnClient, SpawnRequest } from './spawn-client.js';

/**
 * A job on pipes, forked by the agent's spawner (see spawn-client.ts). Its
 * output arrives through FIFOs that the spawner opened for the job before
 * it started and holds until we have opened our read ends (we then unlink
 * the names and tell it), so the output of a job that is already over is
 * still there, and the EOF comes once the job's ends are closed.
 */
export class SpawnedJobProcess extends PipedJobProcess {
  private jobPid: number | undefined;
  private pendingSignal: NodeJS.Signals | undefined;
  private readonly spawner: SpawnClient;
  private readonly spawnId: number;
  /** The FRESH payload from the job's process, with `inputs`, as it came. */
  private readonly report: Buffer[] = [];

  constructor(spawner: SpawnClient, req: SpawnRequest) {
    super();
    this.spawner = spawner;
    const paths = {
      id: 0,
      out: '',
      err: undefined as string | undefined,
      report: undefined as string | undefined,
    };
    Object.assign(
      paths,
      spawner.spawn(req, {
        started: (pid) => {
          if (pid < 0) return this.failedToStart(`mpm agent: cannot start job: errno ${-pid}\n`);
          this.jobPid = pid;
          try {
            this.watchFifo(1, paths.out);
            if (paths.err) this.watchFifo(2, paths.err);
            if (paths.report) this.watchFifo((b) => this.report.push(b), paths.report);
            spawner.opened(paths.id);
          } catch (err) {
            // Never expected; the agent must survive it, and the job not run on unseen.
            spawner.signal(paths.id, constants.signals.SIGKILL, false);
            this.emit(
              'data',
              2,
              Buffer.from(`mpm agent: cannot read job output: ${(err as Error).message}\n`),
            );
          }
          if (this.pendingSignal) this.kill(this.pendingSignal);
        },
        exited: (code, signal, cpuMs) =>
          this.exited({
            code,
            signal: signal === null ? null : signalName(signal),
            ...(cpuMs !== undefined ? { cpuMs } : {}),
          }),
        dead: () => {
          if (this.outcome) return;
          this.outcome = { code: null, signal: 'SIGKILL' };
          this.finish();
        },
      }),
    );
    this.spawnId = paths.id;
  }

  get pid(): number | undefined {
    return this.jobPid;
  }

  /**
   * With `inputs`, once the job is over: how its process found them before
   * it ran the job (stale ones: it did not), or undefined when it ended
   * before it could say (killed during the wait, or never started).
   */
  get inputWait(): InputWait | undefined {
    if (this.report.length === 0) return undefined;
    try {
      return decodeFresh(Buffer.concat(this.report));
    } catch {
      return undefined; // cut short by a kill
    }
  }

  /**
   * Through the spawner, which signals the group only while the job's
   * leader is unreaped (never a group that reused its id); what is left of
   * the group dies with the leader.
   */
  override kill(signal: NodeJS.Signals): void {
    if (this.jobPid === undefined) this.pendingSignal = signal;
    else this.spawner.signal(this.spawnId, constants.signals[signal], true);
  }

  private watchFifo(stream: StreamId | ((bytes: Buffer) => void), path: string): void {
    const fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    unlinkSync(path); // both ends are open: the name is not needed any more
    this.watch(stream, new Socket({ fd, readable: true, writable: false }));
  }
}
