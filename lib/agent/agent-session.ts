import type { Socket } from 'node:net';
import {
  AUTH_TIME_LIMIT,
  endpointOf,
  newChallenge,
  proveAgent,
  verifyClientProof,
  type HandshakeBinding,
} from '../protocol/auth.js';
import { Channel } from '../protocol/channel.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../protocol/frame-codec.js';
import {
  checkClientMessage,
  PROTOCOL_VERSION,
  type AgentToClient,
  type AuthMessage,
  type CancelMessage,
  type ClientToAgent,
  type JobMessage,
  type LoadMessage,
  type ProbeMessage,
} from '../protocol/messages.js';
import { leaseMsFor } from '../protocol/lease.js';
import { isTlsError } from '../protocol/tls.js';
import type { Refusal } from '../protocol/refusal.js';
import { printable, type AgentLog } from './agent-log.js';
import { statusReply, trackClient, type StatusEntry } from './agent-status.js';
import type { AgentOptions } from './agent-options.js';
import { cwdRefusal, jobBytes, jobRefusal } from './job-check.js';
import type { QueueBudget } from './queue-budget.js';
import { parseSignal } from './job-process.js';
import { sharedLeaseBoard, type Lease } from './lease-board.js';
import type { JobScheduler } from './job-scheduler.js';
import { probeAs } from './probe.js';
import { authenticateMunge } from './munge-auth.js';
import { channelBinding } from '../protocol/munge.js';
import type { RunAs } from './run-as.js';
import { RemoteJob } from './remote-job.js';

/**
 * A client must authenticate this soon after connecting (mpmake gives up
 * after its connect timeout, 3 s by default): a silent peer holds its
 * place no longer.
 */
export const AUTH_TIMEOUT_MS = 5_000;
/**
 * With --auth munge: longer, for a starved machine with a dozen clients
 * dialling at once (a MUNGE handshake asks munged twice here, and runs one
 * `getent` for a uid not seen in the last minute; twelve users at load 22
 * once took more than 5 s, when each handshake started processes on both
 * sides). Handshakes in progress stay bounded by --max-unauthenticated.
 */
export const MUNGE_AUTH_TIMEOUT_MS = 30_000;
/**
 * An authenticated client that says nothing for this long is gone (a cut
 * link, a hung or frozen client): its jobs are killed. Clients ping every
 * fifth of their own heartbeat timeout and tell us that timeout; we act at
 * 80% of it, so the jobs are dead here before the client runs them again
 * elsewhere.
 */
export const DEFAULT_CLIENT_SILENCE_MS = 4000;
/** After we close our side, a peer that keeps its side open is cut off. */
const CLOSE_LINGER_MS = 2000;
/** Unsent bytes that mean the client stopped reading altogether. */
const MAX_UNSENT_BYTES = 64 * 1024 * 1024;
/**
 * Frame limit before authentication: an auth message is small, and a peer
 * that has not proved anything must not make us buffer 16 MiB. Clients
 * wait for the welcome before sending anything else.
 */
export const PRE_AUTH_MAX_FRAME_BYTES = 64 * 1024;
/** Messages held while a MUNGE credential is checked (clients send none before the welcome). */
const MAX_HELD_MESSAGES = 16;

/** What every session shares: the node's facts, options and slots. */
export interface AgentContext {
  readonly options: AgentOptions;
  readonly nodeId: string;
  /** Random per agent process (see node-identity.ts). */
  readonly instance: string;
  readonly hostname: string;
  readonly agentVersion: string;
  readonly cpus: number;
  readonly scheduler: JobScheduler<RemoteJob>;
  /** Bytes of waiting jobs, per client and in all. */
  readonly queueBudget: QueueBudget;
  readonly log: AgentLog;
  loadMessage(): LoadMessage;
}

/** handshake: hello sent, waiting for auth; ready: authenticated; closing: our end is shut. */
export type SessionState = 'handshake' | 'ready' | 'closing' | 'closed';

/**
 * One client connection. Nothing is run or revealed before the client has
 * authenticated; after that it may run jobs, probe files and ping. When the
 * connection ends, for whatever reason, every process of its jobs is killed
 * and its queued jobs are dropped.
 */
export class AgentSession {
  private state: SessionState = 'handshake';
  private readonly channel: Channel<ClientToAgent, AgentToClient>;
  private readonly challenge = newChallenge();
  private readonly jobs = new Map<number, RemoteJob>();
  /** Admission checks run one after another, so jobs queue in arrival order. */
  private admission: Promise<void> = Promise.resolve();
  private admitting = 0;
  private congested = false;
  private authTimer: NodeJS.Timeout | undefined;
  private silenceTimer: NodeJS.Timeout | undefined;
  /** Counts armings of the silence timer: a judgement of an older one is void. */
  private silenceArmed = 0;
  private silenceMs = DEFAULT_CLIENT_SILENCE_MS;
  /** The client's job lease (lease-board.ts): renewed by its heartbeats, revoked when it goes. */
  private lease: Lease | undefined;
  private leaseMs = leaseMsFor(DEFAULT_CLIENT_SILENCE_MS / 0.8);
  /**
   * The client stamps its heartbeats (mpmake, mpm exec): only they renew the
   * lease. Until one comes (an older client), every message renews it.
   */
  private stampedHeartbeats = false;
  private client = '';
  /** Whose share this connection's jobs take: the scheduler is fair per user. */
  private fairUser = '';
  /** Lists this connection in status replies once authenticated. */
  private status: StatusEntry | undefined;
  /** The peer's address and port, for logs. */
  readonly peer: string;
  /** The peer's address alone. */
  readonly address: string | undefined;
  /** Our end of this connection, as the client must have dialled it (endpointOf). */
  private readonly endpoint: string;
  /** What both proofs cover, once the client's auth has come. */
  private binding: HandshakeBinding | undefined;
  /** Whom this connection's jobs run as: `--user`, or the user a MUNGE credential proved. */
  private runAs: RunAs | undefined;
  /** The MUNGE-proven user's name; undefined without --auth munge. */
  private provenUser: string | undefined;
  /** Messages that came while a MUNGE credential was being checked. */
  private held: ClientToAgent[] | undefined;

  constructor(
    socket: Socket,
    private readonly ctx: AgentContext,
    private readonly onClosed: (session: AgentSession) => void,
    /** Where the connection came from, when `socket` wraps another (TLS). */
    from?: { address: string | undefined; port: number | undefined },
    /** Called once the client has authenticated. */
    private readonly onReady?: (session: AgentSession) => void,
  ) {
    this.address = from ? from.address : socket.remoteAddress;
    this.peer = `${this.address}:${from ? from.port : socket.remotePort}`;
    this.endpoint = endpointOf(socket.localAddress, socket.localPort);
    this.runAs = ctx.options.runAs;
    socket.setKeepAlive(true, 30_000);
    this.channel = new Channel(socket, {
      check: checkClientMessage,
      maxFrameBytes: PRE_AUTH_MAX_FRAME_BYTES,
    });
    this.channel.on('message', (m) => this.onMessage(m));
    this.channel.on('protocol-error', (err) => this.onProtocolError(err));
    this.channel.on('drain', () => this.setCongested(false));
    this.channel.on('close', (err) => this.onClose(err));
    ctx.log(`connection from ${this.peer}`);
    this.send({
      type: 'hello',
      version: PROTOCOL_VERSION,
      challenge: this.challenge,
      authRequired: ctx.options.secret !== undefined,
      nodeId: ctx.nodeId,
      ...(ctx.options.munge ? { munge: true } : {}),
    });
    this.authTimer = setTimeout(
      () => {
        this.refuse('MPM_ERR_AUTH', AUTH_TIME_LIMIT, 'did not authenticate in time');
      },
      ctx.options.munge ? MUNGE_AUTH_TIMEOUT_MS : AUTH_TIMEOUT_MS,
    );
  }

  get isReady(): boolean {
    return this.state === 'ready';
  }

  /** Sends a load report (the server calls this for every ready session). */
  /** The node's load, with the queue as this client's user sees it. */
  sendLoad(load: LoadMessage): void {
    if (this.state === 'ready') this.sendOwnLoad(load);
  }

  private sendOwnLoad(load: LoadMessage): void {
    this.send({ ...load, ...this.ctx.scheduler.fairShare(this.fairUser) });
  }

  /** Ends the connection at once (agent shutdown). */
  destroy(): void {
    this.channel.destroy();
  }

  private send(message: AgentToClient): void {
    if (this.state === 'closed') return;
    const flushed = this.channel.send(message);
    if (!flushed) {
      if (this.channel.socket.writableLength > MAX_UNSENT_BYTES) {
        this.ctx.log(`${this.peer}: client is not reading; closing`);
        this.channel.destroy();
        return;
      }
      this.setCongested(true);
    }
  }

  private setCongested(congested: boolean): void {
    if (this.congested === congested) return;
    this.congested = congested;
    for (const job of this.jobs.values()) job.setCongested(congested);
  }

  private onMessage(message: ClientToAgent): void {
    if (this.state === 'ready') {
      this.armSilenceTimer();
      if (!this.stampedHeartbeats) this.lease?.renewFor(this.leaseMs);
    }
    switch (this.state) {
      case 'handshake':
        return this.onHandshake(message);
      case 'ready':
        return this.onRequest(message);
      default:
        return; // closing: nothing more is read
    }
  }

  private onHandshake(message: ClientToAgent): void {
    if (this.held !== undefined) {
      // A MUNGE credential is being checked: what follows waits for the verdict.
      if (this.held.length >= MAX_HELD_MESSAGES) {
        this.refuse('MPM_ERR_AUTH', 'authenticate first', 'sent too much before the welcome');
      } else this.held.push(message);
      return;
    }
    if (message.type !== 'auth') {
      this.refuse('MPM_ERR_AUTH', 'authenticate first', `sent ${message.type} before auth`);
      return;
    }
    if (message.version !== PROTOCOL_VERSION) {
      this.refuse(
        'MPM_ERR_PROTOCOL',
        `protocol version ${message.version} is not supported (this agent speaks ${PROTOCOL_VERSION})`,
        `speaks protocol version ${message.version}`,
      );
      return;
    }
    const { secret, tls, munge } = this.ctx.options;
    if (secret !== undefined || munge !== undefined) {
      const { nonce, endpoint } = message;
      if (nonce === undefined || endpoint === undefined) {
        this.refuse(
          'MPM_ERR_AUTH',
          'authentication failed: the auth has no nonce or endpoint (an older client?)',
          'authentication failed',
        );
        return;
      }
      const binding = { challenge: this.challenge, nonce, nodeId: this.ctx.nodeId, endpoint };
      if (secret !== undefined && !verifyClientProof(secret, binding, message.proof)) {
        this.refuse('MPM_ERR_AUTH', 'authentication failed', 'authentication failed');
        return;
      }
      // In plaintext, the proof must have been made for this very agent:
      // one made for another address was relayed (TLS binds the channel itself).
      if (!tls && endpoint !== this.endpoint) {
        this.refuse(
          'MPM_ERR_AUTH',
          `authentication failed: the client dialled ${printable(endpoint)}, ` +
            `but this agent is ${this.endpoint}: a relayed handshake is refused ` +
            '(through NAT, a proxy or a tunnel, use TLS)',
          `authentication failed: proof made for ${printable(endpoint)}, a relay?`,
        );
        return;
      }
      this.binding = binding;
      if (munge !== undefined) {
        if (message.munge === undefined) {
          this.refuse(
            'MPM_ERR_AUTH',
            'this agent authenticates by MUNGE (--auth munge): set MPMAKE_AUTH=munge, ' +
              '--mp-auth=munge or config "auth": "munge"',
            'sent no MUNGE credential',
          );
          return;
        }
        this.held = [];
        void this.checkMunge(message, message.munge, binding);
        return;
      }
    }
    this.onAuthenticated(message);
  }

  /** `--auth munge`: the client's uid from its credential; its jobs run as that user. */
  private async checkMunge(
    auth: AuthMessage,
    credential: string,
    binding: HandshakeBinding,
  ): Promise<void> {
    const { options } = this.ctx;
    const outcome = await authenticateMunge(
      {
        munge: options.munge!,
        allowRoot: options.allowRoot === true,
        euid: process.geteuid?.() ?? -1,
      },
      credential,
      binding,
      channelBinding(this.channel.socket),
    ).catch((err: Error) => ({
      code: 'MPM_ERR_MUNGE_CRED' as const,
      refused: 'authentication failed',
      log: err.message,
    }));
    const held = this.held ?? [];
    this.held = undefined;
    if (this.state !== 'handshake') return;
    if ('refused' in outcome) {
      this.refuse(outcome.code, outcome.refused, printable(outcome.log));
      return;
    }
    this.runAs = outcome.runAs;
    this.provenUser = outcome.user;
    this.onAuthenticated(auth, outcome.credential);
    for (const m of held) this.onMessage(m);
  }

  private armSilenceTimer(): void {
    clearTimeout(this.silenceTimer);
    const armed = ++this.silenceArmed;
    this.silenceTimer = setTimeout(() => {
      // Judged after what has come meanwhile is read: an agent starved of
      // CPU runs its due timers before it reads its sockets, where the
      // client's pings may be waiting (issue 15: twelve builds at load 22
      // lost agents). A message read now arms a new timer.
      setImmediate(() => {
        if (armed !== this.silenceArmed || this.state === 'closed') return;
        this.ctx.log(`${this.peer}: silent for ${this.silenceMs} ms; the client is gone`);
        this.channel.destroy(new Error(`client silent for ${this.silenceMs} ms`));
      });
    }, this.silenceMs);
  }

  private onAuthenticated(auth: AuthMessage, mungeCredential?: string): void {
    clearTimeout(this.authTimer);
    this.state = 'ready';
    this.onReady?.(this);
    this.channel.setMaxFrameBytes(DEFAULT_MAX_FRAME_BYTES);
    const c = auth.client;
    if (c.heartbeatTimeoutMs !== undefined && c.heartbeatTimeoutMs >= 250) {
      // At most what a timer holds (a larger delay would fire at once).
      this.silenceMs = Math.min(Math.floor(c.heartbeatTimeoutMs * 0.8), 0x7fffffff);
      this.leaseMs = leaseMsFor(c.heartbeatTimeoutMs);
    }
    this.armSilenceTimer();
    this.lease = sharedLeaseBoard().open(this.leaseMs);
    // A MUNGE-proven user is who it is, whatever the client calls itself;
    // its fair share and status line go by that name.
    const user = this.provenUser ?? c.user;
    this.client = printable(`${user}@${c.host} pid ${c.pid} build ${c.build}`);
    this.fairUser = this.provenUser ?? `${c.user}@${c.host}`;
    this.ctx.log(
      `${this.peer}: authenticated (${this.client})` +
        (this.provenUser !== undefined ? ` by MUNGE; its jobs run as ${this.provenUser}` : ''),
    );
    this.status = trackClient(this.ctx, { ...auth.client, user }, this.jobs, this.fairUser);
    const { ctx } = this;
    const secret = ctx.options.secret;
    this.send({
      type: 'welcome',
      nodeId: ctx.nodeId,
      instance: ctx.instance,
      hostname: ctx.hostname,
      agentVersion: ctx.agentVersion,
      slots: ctx.scheduler.slots,
      cpus: ctx.cpus,
      clockMs: Date.now(),
      // Mutual authentication: the client learns we hold the secret too.
      ...(secret && this.binding ? { proof: proveAgent(secret, this.binding) } : {}),
      ...(mungeCredential !== undefined ? { munge: mungeCredential } : {}),
    });
    this.sendOwnLoad(ctx.loadMessage());
  }

  private onRequest(message: ClientToAgent): void {
    switch (message.type) {
      case 'job':
        return this.admit(message);
      case 'ack':
        this.jobs.get(message.id)?.ack(message.bytes);
        return;
      case 'cancel':
        return this.cancel(message);
      case 'withdraw':
        return this.withdraw(message.id);
      case 'resize':
        this.jobs.get(message.id)?.resize(message.cols, message.rows);
        return;
      case 'probe':
        return this.probe(message);
      case 'ping':
        // Stamped heartbeats keep this client's jobs alive (lease-board.ts).
        if (message.sentMs !== undefined) {
          this.stampedHeartbeats = true;
          this.lease?.renewFromHeartbeat(message.sentMs, this.leaseMs);
        }
        return this.send({ type: 'pong', seq: message.seq, clockMs: Date.now() });
      case 'status-request':
        return this.send(statusReply(this.ctx, message.id, this.status));
      case 'error':
        this.ctx.log(
          `${this.peer}: client reports ${printable(message.code)}: ${printable(message.message)}`,
        );
        return;
      case 'auth':
        this.refuse('MPM_ERR_PROTOCOL', 'already authenticated', 'sent a second auth');
        return;
    }
  }

  private admit(message: JobMessage): void {
    const { id } = message;
    const { scheduler, options, queueBudget } = this.ctx;
    const tooMany: Refusal = {
      kind: 'queue-limit',
      message: `too many queued jobs (limit ${options.maxQueuedPerClient}, --max-queued-per-client)`,
    };
    const invalid = jobRefusal(message);
    let refused: Refusal | undefined =
      invalid === undefined ? undefined : { kind: 'invalid-job', message: invalid };
    if (this.jobs.has(id)) {
      refused = {
        kind: 'invalid-job',
        message: `job id ${id} is already in use on this connection`,
      };
    }
    // Jobs still being checked may start at once, so the exact limit is
    // applied when they join the queue; this only bounds the backlog.
    else if (this.admitting >= options.maxQueuedPerClient + scheduler.slots) refused = tooMany;
    if (refused !== undefined) return this.refuseJob(id, refused);
    // Held from here until the job starts or leaves: a bound on the memory
    // one client, and all of them, can make the agent hold.
    const bytes = jobBytes(message);
    const reservation = queueBudget.reserve(this, bytes);
    if (typeof reservation === 'string') {
      const alone = bytes > queueBudget.perClient || bytes > queueBudget.total;
      return this.refuseJob(id, {
        kind: alone ? 'job-too-big' : 'byte-budget',
        message: reservation,
      });
    }
    // MPMAKE_NODE tells a recipe (and a test) which node it runs on.
    const placed = { ...message, env: { ...message.env, MPMAKE_NODE: this.ctx.nodeId } };
    const job = new RemoteJob(
      placed,
      { send: (m) => this.send(m) },
      this.ctx.log,
      (j) => this.onJobFinished(j),
      this.runAs,
      options.roots,
      reservation,
      this.lease,
    );
    this.jobs.set(id, job);
    this.admitting++;
    this.admission = this.admission.then(async () => {
      let refusal = await cwdRefusal(message.cwd, options.roots).catch((err: Error): Refusal => ({
        kind: 'permission',
        message: `cannot check cwd ${message.cwd}: ${err.message}`,
      }));
      this.admitting--;
      if (scheduler.queuedFor(this) >= options.maxQueuedPerClient) refusal ??= tooMany;
      if (this.state !== 'ready') return; // the connection is gone; the job never ran
      if (job.cancelSignal !== undefined) {
        this.forget(job);
        this.sendCancelledExit(job, job.cancelSignal);
      } else if (refusal !== undefined) {
        this.forget(job);
        this.refuseJob(id, refusal);
      } else {
        job.state = 'queued';
        if (this.congested) job.setCongested(true);
        scheduler.submit(this, job, this.fairUser);
        // Still waiting: say so, so the client may take it back for a
        // node with a free slot (RemoteJob.start says `started` later).
        if (job.state === 'queued') {
          job.announcedQueued = true;
          this.send({ type: 'queued', id });
        }
      }
    });
    // Keep the chain alive whatever happens to one job.
    this.admission = this.admission.catch((err: Error) => {
      this.ctx.log(`${this.peer}: job ${id}: ${printable(err.message)}`);
    });
  }

  /** The job is not taken; `refusal.kind` tells the client where it may go instead. */
  private refuseJob(id: number, refusal: Refusal): void {
    this.send({
      type: 'error',
      code: 'MPM_ERR_JOB_REFUSED',
      id,
      message: refusal.message,
      refusal: refusal.kind,
    });
  }

  private cancel(message: CancelMessage): void {
    const job = this.jobs.get(message.id);
    if (!job) return; // already over: its exit is on its way
    let signal: NodeJS.Signals = 'SIGTERM';
    if (message.signal !== undefined) {
      const parsed = parseSignal(message.signal);
      if (parsed === undefined) {
        this.ctx.log(
          `${this.peer}: cancel with unknown signal ${printable(message.signal)}; using SIGTERM`,
        );
      } else signal = parsed;
    }
    switch (job.state) {
      case 'admitting':
        job.cancelSignal = signal;
        return;
      case 'queued':
        this.ctx.scheduler.removeQueued(this, job);
        this.forget(job);
        this.sendCancelledExit(job, signal);
        return;
      case 'running':
        job.signal(signal);
        return;
      case 'finished':
        return;
    }
  }

  /** The client takes a queued job back, to place it on a node with a free slot. */
  private withdraw(id: number): void {
    const job = this.jobs.get(id);
    if (job?.state !== 'queued') return; // started (or over): it stays here
    this.ctx.scheduler.removeQueued(this, job);
    this.forget(job);
    this.send({ type: 'withdrawn', id });
  }

  /** A job that leaves unstarted: no longer this connection's, its queue bytes freed. */
  private forget(job: RemoteJob): void {
    this.jobs.delete(job.id);
    job.leaveQueue();
  }

  private sendCancelledExit(job: RemoteJob, signal: NodeJS.Signals): void {
    const queuedMs = Date.now() - job.queuedAtMs;
    this.send({ type: 'exit', id: job.id, code: null, signal, runMs: 0, queuedMs });
  }

  private probe(message: ProbeMessage): void {
    // As the job's user, through the launcher (see probeAs).
    void probeAs(message.path, message.content, this.runAs, this.ctx.options.roots)
      .catch((err: Error) => ({ ok: false, reason: `cannot probe: ${err.message}` }))
      .then(({ ok, reason }) => {
        if (this.state === 'ready') {
          this.send({ type: 'probe-result', id: message.id, ok, reason });
        }
      });
  }

  private onJobFinished(job: RemoteJob): void {
    if (this.jobs.get(job.id) === job) this.jobs.delete(job.id);
    this.ctx.scheduler.release(job);
  }

  /** Sends an error, logs why, and closes the connection. */
  private refuse(code: string, message: string, logReason: string): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.ctx.log(`${this.peer}: ${logReason}; closing`);
    this.send({ type: 'error', code, message });
    this.release();
    this.state = 'closing';
    this.channel.close();
    setTimeout(() => this.channel.destroy(), CLOSE_LINGER_MS).unref();
  }

  private onProtocolError(err: Error): void {
    this.ctx.log(`${this.peer}: protocol error: ${printable(err.message)}; closing`);
    // The channel destroys itself right after this; the error may still get out.
    this.send({ type: 'error', code: 'MPM_ERR_PROTOCOL', message: err.message });
  }

  private onClose(err: Error | undefined): void {
    if (this.state === 'closed') return;
    const wasOpen = this.state !== 'closing';
    const killed = this.release();
    this.state = 'closed';
    if (wasOpen) {
      const tls = err && isTlsError(err) ? 'TLS: ' : '';
      const why = err ? `: ${tls}${printable(err.message)}` : '';
      const what = killed > 0 ? ` (${killed} job${killed === 1 ? '' : 's'} killed or dropped)` : '';
      this.ctx.log(`${this.peer}: connection closed${why}${what}`);
    }
    this.onClosed(this);
  }

  /** Kills this client's running jobs and drops its queued ones; returns how many. */
  private release(): number {
    clearTimeout(this.authTimer);
    clearTimeout(this.silenceTimer);
    // Every supervisor of this client's jobs kills its job at its next look.
    this.lease?.revoke();
    this.status?.untrack();
    const count = this.jobs.size;
    this.ctx.scheduler.dropClient(this);
    for (const job of this.jobs.values()) job.abort();
    this.jobs.clear();
    return count;
  }
}
