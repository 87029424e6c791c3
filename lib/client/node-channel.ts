import { EventEmitter } from 'node:events';
import {
  type AgentToClient,
  type ClientToAgent,
  type DataMessage,
  type ExitMessage,
  type LoadMessage,
  type ProbeResultMessage,
} from '../protocol/messages.js';
import { leaseGraceMs, leaseMsFor } from '../protocol/lease.js';
import type { RefusalKind } from '../protocol/refusal.js';
import { tracer } from '../trace.js';
import { dialAgent, type AgentChannel } from './agent-dial.js';
import { Backoff } from './backoff.js';
import { socketProblem } from './connect-problem.js';
import type { HostSpec } from './host-list.js';

const trace = tracer('channel');

/** The closed set of states of a channel to one agent. */
export type ChannelState = 'idle' | 'connecting' | 'ready' | 'down' | 'closed';

const ALLOWED: Record<ChannelState, ChannelState[]> = {
  idle: ['connecting', 'closed'],
  connecting: ['ready', 'down', 'closed'],
  ready: ['down', 'closed'],
  down: ['connecting', 'closed'],
  closed: [],
};

export interface NodeChannelOptions {
  secret: Buffer | undefined;
  client: { user: string; host: string; pid: number; build: string };
  connectTimeoutMs: number;
  heartbeatIntervalMs: number;
  /** No message at all for this long: the node is down. */
  heartbeatTimeoutMs: number;
  reconnect: boolean;
  /** Where the secret came from (`MPMAKE_SECRET_FILE`, …), to name in a refusal. */
  secretFrom?: string | undefined;
}

export interface NodeChannelEvents {
  state: [ChannelState, string | undefined];
  load: [LoadMessage];
  data: [DataMessage];
  exit: [ExitMessage];
  /** A job's error: id, code, message, and with MPM_ERR_JOB_REFUSED the refusal's kind. */
  'job-error': [number, string, string, RefusalKind | undefined];
  'probe-result': [ProbeResultMessage];
  /** A job of ours waits in the node's queue (true) or has left it (false). */
  'job-queued': [number, boolean];
  /** A job we took back left the node's queue unstarted. */
  withdrawn: [number];
  drain: [];
}

/**
 * One persistent, multiplexed channel to one agent: connect, authenticate,
 * heartbeat, and reconnect with jittered backoff after a loss. Every state
 * change goes through `transition`, which refuses unexpected moves.
 */
export class NodeChannel extends EventEmitter<NodeChannelEvents> {
  state: ChannelState = 'idle';
  /** Why the node is down or was refused, for status lines. */
  reason: string | undefined;
  /** What reports call this node: its name, qualified when another agent has it too. */
  nodeId: string;
  /** The agent's own name and its per-process instance id (from its welcome). */
  agentName: string | undefined;
  instance: string | undefined;
  slots: number;
  cpus = 1;
  lastLoad: LoadMessage | undefined;
  lastLoadAtMs = 0;
  /** Agent clock minus ours, ms, from the last ping (the middle of `clockSkewRange`). */
  clockSkewMs = 0;
  /**
   * Where agent clock minus ours surely lies: the agent read its clock
   * between our ping and its pong, so a slow pong widens the range.
   */
  clockSkewRange: { lo: number; hi: number } = { lo: 0, hi: 0 };
  /** Authentication failed: reconnecting will not help. */
  refused = false;
  /**
   * The last loss was our own doing: this process was frozen so long that
   * the agent gave up on us. Not the node's fault, nor its jobs'.
   */
  lostByFreeze = false;

  private channel: AgentChannel | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private lastHeardMs = 0;
  private pingSeq = 0;
  private pingSentMs = new Map<number, number>();
  private readonly backoff = new Backoff();
  /** Dials in a row that ended before the agent's welcome (each next one waits longer). */
  private failedDials = 0;
  /** The job lease our heartbeats buy on the node (lib/protocol/lease.ts). */
  readonly leaseMs: number;
  /** When (our monotonic clock, ms) we last sent something that renews the lease. */
  private lastLeaseSentMs = -Infinity;

  constructor(
    readonly spec: HostSpec,
    private readonly options: NodeChannelOptions,
  ) {
    super();
    this.nodeId = spec.address;
    this.slots = spec.slots ?? 1;
    this.leaseMs = leaseMsFor(options.heartbeatTimeoutMs);
  }

  /**
   * How long from now until every job we sent this node is certainly dead
   * there, even if the node is frozen or cut off: our last lease renewal
   * plus the lease plus a grace, all on our own clock (0 when past).
   */
  leaseLapsesInMs(): number {
    const until = this.lastLeaseSentMs + this.leaseMs + leaseGraceMs(this.leaseMs);
    return Math.max(0, Math.ceil(until - performance.now()));
  }

  get address(): string {
    return this.spec.address;
  }

  /** Connects; resolves when ready, or when the first attempt has failed. */
  start(): Promise<void> {
    return new Promise((resolve) => {
      const onState = (s: ChannelState): void => {
        if (s === 'ready' || s === 'down' || s === 'closed') {
          this.off('state', onState);
          resolve();
        }
      };
      this.on('state', onState);
      this.connect();
    });
  }

  send(message: ClientToAgent): boolean {
    if (this.state !== 'ready' || !this.channel) return false;
    return this.channel.send(message);
  }

  /** Closes for good: no reconnect. Jobs still running there are killed by the agent. */
  close(): void {
    clearTimeout(this.reconnectTimer);
    clearInterval(this.heartbeat);
    this.channel?.close();
    this.channel?.socket.unref();
    this.transition(this.state, 'closed', undefined);
  }

  private transition(from: ChannelState, to: ChannelState, reason: string | undefined): boolean {
    if (this.state !== from || !ALLOWED[from].includes(to)) {
      trace(`${this.address}: refused transition ${this.state} -> ${to}`);
      return false;
    }
    trace(`${this.address}: ${from} -> ${to}${reason ? ` (${reason})` : ''}`);
    this.state = to;
    if (to !== 'ready') this.reason = reason;
    this.emit('state', to, reason);
    return true;
  }

  private connect(): void {
    if (!this.transition(this.state, 'connecting', undefined)) return;
    this.lostByFreeze = false;
    const dialed = dialAgent(
      this.spec,
      {
        secret: this.options.secret,
        secretFrom: this.options.secretFrom,
        client: { ...this.options.client, heartbeatTimeoutMs: this.options.heartbeatTimeoutMs },
        timeoutMs: dialTimeoutMs(this.options.connectTimeoutMs, this.failedDials),
        // After a loss, only the same agent may take this address's place.
        expectNodeId: this.agentName,
      },
      {
        // The agent opens our lease when it reads the auth.
        authSent: () => (this.lastLeaseSentMs = performance.now()),
        ready: (m) => {
          this.lastHeardMs = Date.now();
          if (this.instance !== m.instance || this.agentName !== m.nodeId) this.nodeId = m.nodeId;
          this.agentName = m.nodeId;
          this.instance = m.instance;
          this.slots = this.spec.slots ?? m.slots;
          this.cpus = m.cpus;
          this.clockSkewMs = m.clockMs - Date.now();
          this.clockSkewRange = { lo: this.clockSkewMs, hi: this.clockSkewMs };
          this.backoff.reset();
          this.failedDials = 0;
          this.startHeartbeat();
          this.transition('connecting', 'ready', undefined);
        },
        message: (m) => {
          this.lastHeardMs = Date.now();
          this.onMessage(m);
        },
        closed: (err, { authed, refused }) => {
          clearInterval(this.heartbeat);
          if (this.channel !== channel) return;
          this.channel = undefined;
          if (this.state === 'closed') return;
          if (refused) this.refused = true;
          if (this.state === 'connecting') this.failedDials++;
          this.transition(this.state, 'down', socketProblem(err, authed));
          this.scheduleReconnect();
        },
      },
    );
    if ('refusal' in dialed) {
      this.refused = true;
      this.transition('connecting', 'down', dialed.refusal);
      return;
    }
    const { channel } = dialed;
    this.channel = channel;
    channel.on('drain', () => this.emit('drain'));
  }

  private scheduleReconnect(): void {
    if (this.options.reconnect && !this.refused) {
      const delay = this.backoff.next();
      trace(`${this.address}: reconnect in ${delay} ms`);
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
      this.reconnectTimer.unref();
    }
  }

  private onMessage(m: AgentToClient): void {
    switch (m.type) {
      case 'load':
        this.lastLoad = m;
        this.lastLoadAtMs = Date.now();
        this.emit('load', m);
        break;
      case 'data':
        this.emit('data', m);
        break;
      case 'exit':
        this.emit('exit', m);
        break;
      case 'probe-result':
        this.emit('probe-result', m);
        break;
      case 'queued':
      case 'started':
        this.emit('job-queued', m.id, m.type === 'queued');
        break;
      case 'withdrawn':
        this.emit('withdrawn', m.id);
        break;
      case 'pong': {
        const sent = this.pingSentMs.get(m.seq);
        if (sent !== undefined) {
          this.pingSentMs.delete(m.seq);
          const now = Date.now();
          this.clockSkewMs = m.clockMs - (sent + now) / 2;
          this.clockSkewRange = { lo: m.clockMs - now, hi: m.clockMs - sent };
        }
        break;
      }
      case 'error':
        if (m.id !== undefined) this.emit('job-error', m.id, m.code, m.message, m.refusal);
        else trace(`${this.address}: agent error ${m.code}: ${m.message}`);
        break;
      default:
        break;
    }
  }

  /**
   * Sends one ping now; its pong refreshes the clock-skew estimate, and it
   * renews our jobs' lease on the node. Not while the node has been silent
   * for longer than the heartbeat timeout less half the lease: then the
   * lease is left to run out, so that when we give the node up, its jobs
   * die within half a lease and run again without a long wait.
   */
  ping(): void {
    const silentMs = Date.now() - this.lastHeardMs;
    if (silentMs > this.options.heartbeatTimeoutMs - this.leaseMs / 2) return;
    if (this.state !== 'ready' || !this.channel) return;
    const seq = ++this.pingSeq;
    this.pingSentMs.set(seq, Date.now());
    const sentMs = performance.now();
    this.lastLeaseSentMs = sentMs;
    this.channel.send({ type: 'ping', seq, sentMs });
  }

  private startHeartbeat(): void {
    clearInterval(this.heartbeat);
    let lastTick = performance.now();
    this.heartbeat = setInterval(() => {
      const tick = performance.now();
      const frozenMs = tick - lastTick - this.options.heartbeatIntervalMs;
      lastTick = tick;
      // The agent hangs up on a client silent for 80% of our timeout.
      if (frozenMs > this.options.heartbeatTimeoutMs * 0.8 - this.options.heartbeatIntervalMs) {
        // We were stopped (or starved) so long that the agent has given up
        // on us (and killed our jobs there). Start afresh.
        this.lostByFreeze = true;
        this.channel?.destroy(
          new Error(
            `this client was frozen for ${Math.round(frozenMs)} ms; the agent gave up on it`,
          ),
        );
        return;
      }
      if (Date.now() - this.lastHeardMs > this.options.heartbeatTimeoutMs) {
        // Judged after what has come meanwhile is read: a starved client
        // runs its due timers before it reads its sockets.
        const channel = this.channel;
        setImmediate(() => {
          if (channel !== this.channel) return;
          if (Date.now() - this.lastHeardMs <= this.options.heartbeatTimeoutMs) return;
          channel?.destroy(new Error(`no heartbeat for ${this.options.heartbeatTimeoutMs} ms`));
        });
        return;
      }
      if (this.pingSentMs.size > 8) this.pingSentMs.clear();
      this.ping();
    }, this.options.heartbeatIntervalMs);
    this.heartbeat.unref();
  }
}

/**
 * The time a dial may take: the connect timeout, doubled for each dial in
 * a row that failed, up to 8 times it. An agent (or this client) too busy
 * to finish a handshake within the timeout would otherwise be timed out
 * on every retry alike and never join (twelve MUNGE builds at once on a
 * loaded machine); TCP backs off its SYN retries the same way.
 */
export function dialTimeoutMs(connectTimeoutMs: number, failedDials: number): number {
  return connectTimeoutMs * 2 ** Math.min(failedDials, 3);
}
