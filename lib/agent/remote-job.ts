import { isAbsolute } from 'node:path';
import type {
  DataMessage,
  ErrorMessage,
  ExitMessage,
  InputWait,
  JobMessage,
  JobStateMessage,
} from '../protocol/messages.js';
import { tracer } from '../trace.js';
import type { AgentLog } from './agent-log.js';
import { revalidateInputs, seeFiles } from './file-seen.js';
import { expectPayload } from '../shim/shim-protocol.js';
import { buildJobCommand } from './job-command.js';
import { sharedLeaseBoard, type Lease } from './lease-board.js';
import type { JobOutcome, JobProcess } from './job-process.js';
import type { Reservation } from './queue-budget.js';
import type { RunAs } from './run-as.js';
import { sharedSpawner, type SpawnClient } from './spawn-client.js';
import { SpawnedJobProcess } from './spawned-job-process.js';
import { startJobProcess } from './start-job-process.js';

const trace = tracer('agent');

/** Output a job may have in flight (sent, not yet acked) before it is paused. */
export const FLOW_WINDOW_BYTES = 1024 * 1024;
/** How long a signalled job's group has before SIGKILL. */
export const KILL_GRACE_MS = 2000;

export type RemoteJobState = 'admitting' | 'queued' | 'running' | 'finished';

/** Where a job's messages go: its client's connection. */
export interface JobSink {
  send(message: DataMessage | ExitMessage | JobStateMessage | ErrorMessage): void;
}

/**
 * One client's job on this node, from admission to its exit message: runs
 * the process, forwards its output under flow control (paused while more
 * than FLOW_WINDOW_BYTES are unacked, or while the connection is congested),
 * and escalates a kill to SIGKILL after a grace period.
 */
export class RemoteJob {
  state: RemoteJobState = 'admitting';
  /** Set when the job is cancelled before it was queued. */
  cancelSignal: NodeJS.Signals | undefined;
  /** The client was told this job waits in the queue: tell it when it starts. */
  announcedQueued = false;
  readonly queuedAtMs = Date.now();
  private startedAtMs = 0;
  /** The lease's lapse count when the job started, or -1 when it had lapsed then. */
  private lapsesAtStart = 0;
  private process: JobProcess | undefined;
  private unackedBytes = 0;
  private congested = false;
  private paused = false;
  /** Set once the client is gone: output is read and dropped, nothing is sent. */
  private detached = false;
  private killTimer: NodeJS.Timeout | undefined;
  /** A signal that came while the inputs were being revalidated. */
  private earlySignal: NodeJS.Signals | undefined;
  private inputWait: InputWait | undefined;

  constructor(
    readonly message: JobMessage,
    private readonly sink: JobSink,
    private readonly log: AgentLog,
    private readonly onFinish: (job: RemoteJob) => void,
    /** The user the job runs as (`--user`, MUNGE); undefined = the agent's own. */
    private readonly runAs?: RunAs,
    /**
     * The agent's --root directories, checked again where the job starts;
     * only files under them are stat'ed for the client.
     */
    private readonly roots: readonly string[] = [],
    /** Its bytes in the agent's queue budget, released once it starts or ends. */
    private readonly reservation?: Reservation,
    /** The client's lease: the job's supervisor kills it when the lease lapses. */
    private readonly lease?: Lease,
  ) {}

  get id(): number {
    return this.message.id;
  }

  get pid(): number | undefined {
    return this.process?.pid;
  }

  /** When the job got its slot (agent clock, ms); undefined while it waits. */
  get startedAt(): number | undefined {
    return this.state === 'running' || this.state === 'finished' ? this.startedAtMs : undefined;
  }

  /** The job leaves this node unstarted (refused, cancelled, withdrawn): frees its queue bytes. */
  leaveQueue(): void {
    this.reservation?.release();
  }

  /** Called by the scheduler when the job gets a slot. */
  start(): void {
    this.reservation?.release();
    this.state = 'running';
    this.startedAtMs = Date.now();
    if (this.announcedQueued) this.sink.send({ type: 'started', id: this.id });
    // Plain pipe jobs of the agent's own user go through the spawner (a
    // small process that forks cheaply); tty jobs and jobs run as another
    // user, through node-pty or the launcher.
    const spawner =
      this.message.tty === undefined && this.runAs === undefined ? sharedSpawner() : undefined;
    const inputs = this.message.inputs;
    if (inputs === undefined || inputs.length === 0) return this.launch(spawner);
    // Inputs another machine wrote in this build: wait until this node
    // sees them as their writer did, so the job reads no stale file.
    const waitMs = this.message.fsWaitMs ?? 2000;
    // Through the spawner, in the job's own process before it execs: no
    // process started for the wait (spawn-server.c).
    if (spawner) return this.launch(spawner, expectPayload(waitMs, 'another machine', inputs));
    // Run as another user: in that user's view, as the job would see them.
    const as = this.runAs
      ? { runAs: this.runAs, cwd: this.message.cwd, roots: this.roots }
      : undefined;
    void revalidateInputs(inputs, waitMs, 'another machine', as).then((w) => {
      this.inputWait = w;
      if (this.earlySignal !== undefined || this.detached) {
        return this.finish({ code: null, signal: this.earlySignal ?? 'SIGTERM' });
      }
      if (w.stale.length === 0) return this.launch(undefined);
      this.refuseStale(w);
    });
  }

  /** An input still looked different past the bound: the job is not run (MPM_ERR_FS_STALE). */
  private refuseStale(w: InputWait): void {
    const text =
      `mpmake: ${w.stale.join(', ')} still look${w.stale.length === 1 ? 's' : ''} different ` +
      `on this node after ${Math.round(w.lagMs)} ms (--mp-fs-wait=${this.message.fsWaitMs ?? 2000}) ` +
      `than where ${w.stale.length === 1 ? 'it was' : 'they were'} written in this build: the node's ` +
      'file system caches are older than the file (shorten them: NFS actimeo, ' +
      'lookupcache=positive; sshfs dir_cache=no, attr_timeout, negative_timeout=0), and the job would read stale data; not ' +
      'running it. Raise --mp-fs-wait, or mount with shorter caches [MPM_ERR_FS_STALE]\n';
    if (!this.detached) {
      this.sink.send({ type: 'data', id: this.id, stream: 2, bytes: Buffer.from(text) });
    }
    this.finish({ code: 127, signal: null });
  }

  /**
   * Starts the job's process: through `spawner` when given (with `inputs`,
   * an EXPECT payload, revalidated by the job's process before it execs).
   */
  private launch(spawner: SpawnClient | undefined, inputs?: Buffer): void {
    // The environment as sent (the session added MPMAKE_NODE), nothing more.
    const jobEnv = this.message.env;
    // make's $@ (absolute): deleted by the supervisor if the job is killed half-way.
    const produced = this.message.produces?.[0];
    const targetPath = produced !== undefined && isAbsolute(produced) ? produced : undefined;
    const lease = this.lease;
    this.lapsesAtStart = lease === undefined ? 0 : lease.lapsed ? -1 : lease.lapses;
    const spawned = spawner
      ? new SpawnedJobProcess(spawner, {
          argv: this.message.argv,
          env: jobEnv,
          cwd: this.message.cwd,
          umask: this.message.umask,
          mergeOutput: this.message.mergeOutput === true,
          ...(lease ? { leaseSlot: lease.slot } : {}),
          ...(targetPath !== undefined ? { target: targetPath } : {}),
          ...(inputs ? { inputs } : {}),
        })
      : undefined;
    const proc =
      spawned ??
      startJobProcess(
        buildJobCommand(
          {
            ...this.message,
            env: jobEnv,
            lease: lease ? `${sharedLeaseBoard().path}:${lease.slot}` : undefined,
            target: targetPath,
          },
          this.runAs,
          this.roots,
        ),
        this.log,
      );
    this.process = proc;
    trace(
      `job ${this.id}: started pid ${proc.pid} after ${this.startedAtMs - this.queuedAtMs} ms queued`,
    );
    proc.on('data', (stream, bytes) => {
      if (this.detached) return;
      this.unackedBytes += bytes.length;
      this.sink.send({ type: 'data', id: this.id, stream, bytes });
      this.updateFlow();
    });
    proc.once('finish', (outcome) => {
      if (spawned && inputs) {
        // How the job's process found its inputs before it ran the job.
        // None said: it ended before it could (a cancel during the wait).
        this.inputWait = spawned.inputWait;
        const stale = this.inputWait !== undefined && this.inputWait.stale.length > 0;
        if (stale && outcome.signal === null) return this.refuseStale(this.inputWait!);
      }
      this.finish(outcome);
    });
    this.updateFlow();
  }

  /** The client consumed `bytes` more of this job's output. */
  ack(bytes: number): void {
    this.unackedBytes = Math.max(0, this.unackedBytes - bytes);
    this.updateFlow();
  }

  /** The connection's send buffer is full (true) or drained (false). */
  setCongested(congested: boolean): void {
    this.congested = congested;
    this.updateFlow();
  }

  /** The client's terminal changed size: a running pty job's terminal follows. */
  resize(cols: number, rows: number): void {
    if (this.state === 'running') this.process?.resize(cols, rows);
  }

  /** Signals the job's process group; SIGKILL follows after KILL_GRACE_MS. */
  signal(signal: NodeJS.Signals): void {
    if (this.state === 'running' && !this.process) this.earlySignal ??= signal;
    if (this.state !== 'running' || !this.process) return;
    trace(`job ${this.id}: ${signal} to process group ${this.process.pid}`);
    this.process.kill(signal);
    if (this.killTimer === undefined && signal !== 'SIGKILL') {
      const proc = this.process;
      // Through the job's process, which signals the group only while its
      // leader is unreaped (its id cannot name another group yet). What is
      // left of the group after the leader's end is killed by the spawner
      // (or the launcher) at that end, while the id is still held.
      this.killTimer = setTimeout(() => proc.kill('SIGKILL'), KILL_GRACE_MS);
      this.killTimer.unref();
    }
  }

  /** The client is gone: kill the job's processes, send nothing more. */
  abort(): void {
    this.reservation?.release();
    this.detached = true;
    this.updateFlow();
    this.signal('SIGTERM');
  }

  private updateFlow(): void {
    const proc = this.process;
    if (!proc) return;
    const pause = !this.detached && (this.congested || this.unackedBytes > FLOW_WINDOW_BYTES);
    if (pause === this.paused) return;
    this.paused = pause;
    trace(`job ${this.id}: ${pause ? 'paused' : 'resumed'} (${this.unackedBytes} bytes unacked)`);
    if (pause) proc.pause();
    else proc.resume();
  }

  private finish(outcome: JobOutcome): void {
    if (this.state === 'finished') return;
    this.state = 'finished';
    const now = Date.now();
    trace(`job ${this.id}: ended ${outcome.signal ?? `status ${outcome.code}`}`);
    // 127: a supervisor refuses to start a job whose lease has lapsed.
    const killedOrRefused = outcome.signal === 'SIGKILL' || outcome.code === 127;
    const lease = this.lease;
    const lapsed = lease !== undefined && (lease.lapsed || lease.lapses !== this.lapsesAtStart);
    if (!this.detached && killedOrRefused && lapsed) {
      // Killed by its supervisor: the lease lapsed while the client was
      // still there (heartbeats late). Not a result: the client runs it again.
      this.sink.send({
        type: 'error',
        code: 'MPM_ERR_LEASE_LAPSED',
        id: this.id,
        message: 'the job was killed when its lease lapsed (heartbeats came too late)',
      });
      this.onFinish(this);
      return;
    }
    const exit: ExitMessage = {
      type: 'exit',
      id: this.id,
      code: outcome.code,
      signal: outcome.signal,
      runMs: now - this.startedAtMs,
      queuedMs: this.startedAtMs - this.queuedAtMs,
    };
    if (outcome.cpuMs !== undefined) exit.cpuMs = outcome.cpuMs;
    if (this.inputWait) exit.inputWait = this.inputWait;
    const produces = this.message.produces;
    // What the job wrote, as this node sees it now that its processes have
    // exited: the client waits until it sees the same before make does.
    if (this.detached || outcome.code !== 0 || !produces || produces.length === 0) {
      if (!this.detached) this.sink.send(exit);
      this.onFinish(this);
      return;
    }
    void seeFiles(produces, this.roots.length > 0 ? this.roots : ['/']).then((seen) => {
      if (!this.detached) this.sink.send({ ...exit, seen });
      this.onFinish(this);
    });
  }
}
