import { randomBytes } from 'node:crypto';
import { createServer, isIP, type AddressInfo, type Server, type Socket } from 'node:net';
import { availableParallelism, freemem, hostname, loadavg } from 'node:os';
import { UsageError } from '../errors.js';
import type { LoadMessage } from '../protocol/messages.js';
import { acceptTls } from '../protocol/tls.js';
import type { AgentLog } from './agent-log.js';
import type { AgentOptions } from './agent-options.js';
import { AgentSession, type AgentContext } from './agent-session.js';
import { JobScheduler } from './job-scheduler.js';
import { LoadReporter } from './load-reporter.js';
import { PendingConnections } from './pending-connections.js';
import { QueueBudget } from './queue-budget.js';
import { KILL_GRACE_MS, type RemoteJob } from './remote-job.js';

export { MAX_HANDSHAKES_PER_ADDRESS } from './pending-connections.js';

/**
 * An agent's name when `--name` is not given: its host name and listen
 * address, `HOST:PORT` when it listens on every address or on loopback,
 * `HOST/ADDRESS:PORT` when on one other address (several agents on one
 * machine, or clones sharing a host name). Clients still tell apart two
 * agents that end up with one name.
 */
export function defaultName(host: string, listenHost: string, port: number): string {
  const wildcard = listenHost === '0.0.0.0' || listenHost === '::' || listenHost === '';
  const loopback = listenHost.startsWith('127.') || listenHost === '::1';
  if (wildcard || loopback) return `${host}:${port}`;
  const address = isIP(listenHost) === 6 ? `[${listenHost}]` : listenHost;
  return `${host}/${address}:${port}`;
}

/**
 * The node agent: listens, accepts clients (each an AgentSession), and owns
 * the node's slots and load reports. `close()` stops everything and kills
 * every job's process group.
 */
export class AgentServer {
  private readonly sessions = new Set<AgentSession>();
  /** Sessions still authenticating, by source: bounded, oldest pushed out first. */
  private readonly pending: PendingConnections<AgentSession>;
  private readonly scheduler: JobScheduler<RemoteJob>;
  private readonly reporter: LoadReporter;
  private readonly context: AgentContext;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly server: Server,
    readonly options: AgentOptions,
    /** The address actually bound (port 0 resolved). */
    readonly host: string,
    readonly port: number,
    log: AgentLog,
    agentVersion: string,
  ) {
    const cpus = availableParallelism();
    this.pending = new PendingConnections<AgentSession>(options.maxHandshakes);
    this.scheduler = new JobScheduler<RemoteJob>(
      options.slots,
      (job) => job.start(),
      () => this.reporter.changed(),
    );
    const loadMessage = (): LoadMessage => ({
      type: 'load',
      slots: this.scheduler.slots,
      running: this.scheduler.runningCount,
      queued: this.scheduler.queuedCount,
      loadavg1: loadavg()[0] ?? 0,
      cpus,
      freeMemBytes: freemem(),
      clockMs: Date.now(),
    });
    this.reporter = new LoadReporter(loadMessage, (load) => {
      for (const session of this.sessions) session.sendLoad(load);
    });
    this.context = {
      options,
      nodeId: options.id ?? defaultName(hostname(), host, port),
      instance: randomBytes(12).toString('hex'),
      hostname: hostname(),
      agentVersion,
      cpus,
      scheduler: this.scheduler,
      queueBudget: new QueueBudget(options.maxQueuedBytesPerClient, options.maxQueuedBytes),
      log,
      loadMessage,
    };
    server.on('connection', (socket) => this.accept(socket, log));
    server.on('error', (err) => log(`server error: ${err.message}`));
    this.reporter.start();
  }

  /** Starts listening on `options.host:options.port`. */
  static async start(
    options: AgentOptions,
    log: AgentLog,
    agentVersion: string,
  ): Promise<AgentServer> {
    const server = createServer({ noDelay: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: options.host, port: options.port }, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((err: Error) => {
      throw new UsageError(`--listen ${options.host}:${options.port}: ${err.message}`);
    });
    const address = server.address() as AddressInfo;
    return new AgentServer(server, options, address.address, address.port, log, agentVersion);
  }

  /**
   * Admits a connection: from an allowed network, wrapped in TLS when
   * configured. A connection from elsewhere is closed before a byte is read
   * or written, and logged. Connections still authenticating are bounded
   * (per source and in all): the newcomer always gets in, and the oldest of
   * its source, or of the source holding the most, is closed instead, so
   * silent sockets cannot lock anyone out; authenticated ones are never
   * touched.
   */
  private accept(socket: Socket, log: AgentLog): void {
    const address = socket.remoteAddress;
    const peer = `${address}:${socket.remotePort}`;
    if (this.closing) {
      socket.destroy();
      return;
    }
    const { allow, secret, tls } = this.options;
    if (allow && !allow.allows(address)) {
      log(`refused connection from ${peer}: not in --allow (${allow.toString()})`);
      socket.destroy();
      return;
    }
    const channelSocket = tls && secret ? acceptTls(socket, secret) : socket;
    const session = new AgentSession(
      channelSocket,
      this.context,
      (s) => {
        this.pending.remove(s);
        this.sessions.delete(s);
      },
      { address, port: socket.remotePort },
      (s) => this.pending.remove(s),
    );
    this.sessions.add(session);
    for (const old of this.pending.admit(session, address)) {
      log(
        `${old.peer}: closed to make room for ${peer}: ${this.pending.size} connections still ` +
          `authenticating (limits: ${this.pending.perSource} per source, --max-unauthenticated ` +
          `${this.pending.max} in all)`,
      );
      old.destroy();
    }
  }

  get nodeId(): string {
    return this.context.nodeId;
  }

  /** `HOST:PORT`, with brackets around an IPv6 host. */
  get address(): string {
    return this.host.includes(':') ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  /**
   * Stops accepting, closes every connection, and kills every job: SIGTERM
   * to each process group, then SIGKILL to what is left after the grace time.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.server.close();
    this.reporter.stop();
    for (const session of [...this.sessions]) session.destroy();
    const deadline = Date.now() + KILL_GRACE_MS;
    while (this.scheduler.runningCount > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // Through each job's process: never a group whose leader is reaped (its id may be reused).
    for (const job of this.scheduler.runningJobs()) job.signal('SIGKILL');
  }
}
