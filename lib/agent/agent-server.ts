import { createServer, type AddressInfo, type Server } from 'node:net';
import { availableParallelism, freemem, hostname, loadavg } from 'node:os';
import { UsageError } from '../errors.js';
import type { LoadMessage } from '../protocol/messages.js';
import type { AgentLog } from './agent-log.js';
import type { AgentOptions } from './agent-options.js';
import { AgentSession, type AgentContext } from './agent-session.js';
import { killGroup } from './job-process.js';
import { JobScheduler } from './job-scheduler.js';
import { LoadReporter } from './load-reporter.js';
import { KILL_GRACE_MS, type RemoteJob } from './remote-job.js';

/**
 * The node agent: listens, accepts clients (each an AgentSession), and owns
 * the node's slots and load reports. `close()` stops everything and kills
 * every job's process group.
 */
export class AgentServer {
  private readonly sessions = new Set<AgentSession>();
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
      nodeId: options.id ?? `${hostname()}:${port}`,
      hostname: hostname(),
      agentVersion,
      cpus,
      scheduler: this.scheduler,
      log,
      loadMessage,
    };
    server.on('connection', (socket) => {
      if (this.closing) {
        socket.destroy();
        return;
      }
      const session = new AgentSession(socket, this.context, (s) => this.sessions.delete(s));
      this.sessions.add(session);
    });
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
    for (const job of this.scheduler.runningJobs()) killGroup(job.pid, 'SIGKILL');
  }
}
