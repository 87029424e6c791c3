import { dialAgent, type AgentChannel } from '../client/agent-dial.js';
import type { HostSpec } from '../client/host-list.js';
import {
  type AgentToClient,
  type LoadMessage,
  type StatusMessage,
  type WelcomeMessage,
} from '../protocol/messages.js';
import { tracer } from '../trace.js';
import type { ClientIdentity } from './cluster-options.js';
import { unknownNode, type NodeState, type NodeStatus } from './node-status.js';

const trace = tracer('status');

/**
 * While connected, a ping this often: agents hang up on a client silent for
 * a few seconds, and `mpm top` may ask less often than that.
 */
const KEEPALIVE_MS = 1000;

export interface StatusConnectionOptions {
  secret: Buffer | undefined;
  client: ClientIdentity;
  /** For connecting and authenticating, and again for each answer. */
  timeoutMs: number;
}

type Phase = 'idle' | 'connecting' | 'up' | 'down' | 'refused' | 'closed';

interface Pending {
  statusId: number;
  pingSentMs: number;
  status: StatusMessage | undefined;
  skewMs: number | undefined;
  /** The agent answered the request with an error (an agent without status). */
  unsupported: string | undefined;
  done: () => void;
}

/**
 * A status client of one agent over the wire protocol: connects,
 * authenticates, and answers `query()` with the node's facts, load, clock
 * skew, connected clients and jobs. The connection stays open between
 * queries (`mpm top`), and is made again by the next query once lost.
 */
export class StatusConnection {
  private phase: Phase = 'idle';
  private reason: string | null = null;
  private channel: AgentChannel | undefined;
  private welcome: WelcomeMessage | undefined;
  private load: LoadMessage | undefined;
  private last: NodeStatus;
  private nextId = 1;
  private pending: Pending | undefined;
  /** The last finished ask. */
  private answer: Pending | undefined;
  private connecting: Promise<void> | undefined;
  private keepalive: NodeJS.Timeout | undefined;
  private keepaliveSeq = 0;

  constructor(
    readonly spec: HostSpec,
    private readonly options: StatusConnectionOptions,
  ) {
    this.last = unknownNode(spec.address, 'down', 'not asked yet');
  }

  get address(): string {
    return this.spec.address;
  }

  /** The last answer (or failure) seen. */
  get latest(): NodeStatus {
    return this.last;
  }

  /** Asks the node (connecting first when needed); never rejects. */
  async query(): Promise<NodeStatus> {
    if (this.phase === 'closed') return this.last;
    if (this.phase !== 'up') await this.connect();
    if (this.phase === 'up') await this.ask();
    this.last = this.snapshot();
    return this.last;
  }

  /** Closes for good. */
  close(): void {
    this.phase = 'closed';
    clearInterval(this.keepalive);
    this.pending?.done();
    this.channel?.close();
    this.channel?.socket.unref();
  }

  private connect(): Promise<void> {
    if (this.connecting) return this.connecting;
    this.phase = 'connecting';
    // The last welcome stays: a node that went down keeps its name in the view.
    this.load = undefined;
    this.answer = undefined;
    let channel: AgentChannel | undefined;
    const attempt = new Promise<void>((resolve) => {
      let settled = false;
      const settle = (): void => {
        if (settled) return;
        settled = true;
        if (this.connecting === attempt) this.connecting = undefined;
        resolve();
      };
      // The same dial, TLS and proofs as mpmake's (lib/client/agent-dial.ts).
      const dialed = dialAgent(
        this.spec,
        {
          secret: this.options.secret,
          client: this.options.client,
          timeoutMs: this.options.timeoutMs,
          expectNodeId: this.welcome?.nodeId,
        },
        {
          ready: (welcome) => {
            if (this.channel !== channel || !channel) return;
            this.onWelcome(channel, welcome);
            settle();
          },
          message: (m) => {
            if (this.channel === channel && channel) this.onMessage(m);
          },
          closed: (err, { authed, refused }) => {
            if (this.channel === channel) {
              clearInterval(this.keepalive);
              this.channel = undefined;
              if (this.phase === 'connecting' || this.phase === 'up') {
                this.phase = refused ? 'refused' : 'down';
                this.reason = describeClose(err, authed);
              }
              this.pending?.done();
            }
            settle();
          },
        },
      );
      if ('refusal' in dialed) {
        this.phase = 'refused';
        this.reason = dialed.refusal;
        settle();
        return;
      }
      channel = dialed.channel;
      this.channel = channel;
    });
    this.connecting = attempt;
    return attempt;
  }

  private onWelcome(channel: AgentChannel, welcome: WelcomeMessage): void {
    this.welcome = welcome;
    this.phase = 'up';
    this.reason = null;
    clearInterval(this.keepalive);
    this.keepalive = setInterval(() => {
      // Negative sequence numbers: never taken for a status ping.
      if (this.channel === channel) channel.send({ type: 'ping', seq: -++this.keepaliveSeq });
    }, KEEPALIVE_MS);
    this.keepalive.unref();
  }

  /** Handles one message after the welcome. */
  private onMessage(m: AgentToClient): void {
    switch (m.type) {
      case 'load':
        this.load = m;
        return;
      case 'pong': {
        const p = this.pending;
        if (p && m.seq === p.statusId) {
          p.skewMs = m.clockMs - (p.pingSentMs + Date.now()) / 2;
        }
        return;
      }
      case 'status': {
        const p = this.pending;
        if (p && m.id === p.statusId) {
          p.status = m;
          p.done();
        }
        return;
      }
      case 'error':
        if (this.pending && m.id === undefined) {
          // An agent that does not know status-request says so and hangs up.
          this.pending.unsupported = `${m.message}; is the agent an older version? [${m.code}]`;
          this.pending.done();
        }
        return;
      default:
        return;
    }
  }

  /** One ping (for the clock) and one status-request, answered in order. */
  private ask(): Promise<void> {
    const channel = this.channel;
    if (!channel) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const statusId = this.nextId++;
      const pending: Pending = {
        statusId,
        pingSentMs: Date.now(),
        status: undefined,
        skewMs: undefined,
        unsupported: undefined,
        done: () => {
          clearTimeout(timer);
          if (this.pending === pending) this.pending = undefined;
          this.answer = pending;
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.fail(channel, 'down', `no answer within ${this.options.timeoutMs} ms (timeout)`);
      }, this.options.timeoutMs);
      this.pending = pending;
      channel.send({ type: 'ping', seq: statusId });
      channel.send({ type: 'status-request', id: statusId });
    });
  }

  private fail(channel: AgentChannel, state: NodeState, why: string): void {
    if (this.channel !== channel) return;
    trace(`${this.address}: ${state}: ${why}`);
    this.channel = undefined;
    clearInterval(this.keepalive);
    if (this.phase !== 'closed') {
      this.phase = state === 'up' ? 'down' : state;
      this.reason = why;
    }
    channel.destroy();
    this.pending?.done();
  }

  private snapshot(): NodeStatus {
    const status = unknownNode(
      this.address,
      this.phase === 'refused' ? 'refused' : this.phase === 'up' ? 'up' : 'down',
      this.phase === 'up' ? null : (this.reason ?? 'closed'),
    );
    const w = this.welcome;
    if (w) {
      status.nodeId = w.nodeId;
      status.instance = w.instance;
      status.hostname = w.hostname;
      status.agentVersion = w.agentVersion;
      status.slots = w.slots;
      status.cpus = w.cpus;
    }
    const l = this.load;
    if (l) {
      status.slots = l.slots;
      status.running = l.running;
      status.queued = l.queued;
      status.loadavg1 = l.loadavg1;
      status.cpus = l.cpus;
      status.freeMemBytes = l.freeMemBytes;
    }
    const a = this.answer;
    if (a && this.phase === 'up') {
      if (a.skewMs !== undefined) status.clockSkewMs = Math.round(a.skewMs);
      if (a.status) {
        status.clients = a.status.clients;
        status.users = a.status.users ?? null;
        status.jobs = a.status.jobs;
        status.jobsLeftOut = a.status.jobsLeftOut ?? 0;
      } else if (a.unsupported) status.reason = a.unsupported;
    }
    if (status.state !== 'up') {
      // Facts from an earlier connection are kept for the view, not the load.
      status.running = status.queued = status.loadavg1 = status.freeMemBytes = null;
    }
    return status;
  }
}

/** Why a connection closed, in the words of a status table. */
export function describeClose(err: Error | undefined, authed: boolean): string {
  if (!err) return authed ? 'the agent closed the connection' : 'closed during the handshake';
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'MPM_ERR_PROTOCOL') return `it broke the protocol: ${err.message}`;
  if (/ \[MPM_ERR_AUTH\]$/.test(err.message)) {
    return `auth failed: ${err.message.replace(/ \[MPM_ERR_AUTH\]$/, '')}`;
  }
  if (/^the agent requires a shared secret/.test(err.message)) {
    return 'auth failed: the agent requires the shared secret (--secret-file or MPMAKE_SECRET_FILE)';
  }
  if (/^no answer within/.test(err.message)) return `${err.message} (timeout)`;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused (is `mpm agent` running there?)';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `host unreachable (${code})`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host name not found';
    case 'ETIMEDOUT':
      return 'connection timed out (timeout)';
    case 'ECONNRESET':
      return 'connection reset by the agent';
    default:
      return err.message;
  }
}
