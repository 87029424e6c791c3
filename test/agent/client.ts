/**
 * Test helpers for the agent: a real protocol client (Channel over
 * net.connect) and an agent started as a child process, both closed by
 * t.teardown.
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { userInfo } from 'node:os';
import {
  spawnLocalAgent,
  type LocalAgent,
  type SpawnLocalAgentOptions,
} from '../../lib/agent/spawn-agent.js';
import { localSecret } from '../../lib/agent/local-secret.js';
import { authFor } from '../../lib/client/agent-dial.js';
import { Channel } from '../../lib/protocol/channel.js';
import { withoutTapHooks } from '../helpers/run.js';
import {
  checkAgentMessage,
  type AgentToClient,
  type AuthMessage,
  type ClientToAgent,
  type ExitMessage,
  type HelloMessage,
  type JobMessage,
  type WelcomeMessage,
} from '../../lib/protocol/messages.js';

/** The part of tap's Test these helpers use. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

export const WAIT_MS = 20_000;

/** Resolves when `cond()` is true; polls, for conditions outside the protocol. */
export async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = WAIT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Starts an agent and stops it at teardown. */
export async function startAgent(t: Teardown, opts: SpawnLocalAgentOptions): Promise<LocalAgent> {
  const agent = await spawnLocalAgent({ env: withoutTapHooks(), ...opts });
  t.teardown(() => agent.stop());
  return agent;
}

/**
 * Options for an agent without a secret, for the tests of that mode: under
 * a root test run its jobs run as nobody, so that other local users who
 * connect meanwhile do not get root.
 */
export function noSecret(): Pick<SpawnLocalAgentOptions, 'secretFile' | 'extraArgs'> {
  return {
    secretFile: false,
    extraArgs: process.geteuid?.() === 0 ? ['--user', 'nobody'] : [],
  };
}

/** Whether process `pid` is alive (a zombie waiting for its reaper is not). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

export interface JobResult {
  stdout: Buffer;
  stderr: Buffer;
  exit: ExitMessage;
}

type Waiter = {
  match: (m: AgentToClient) => boolean;
  resolve: (m: AgentToClient) => void;
  reject: (err: Error) => void;
};

/** A protocol client that records every message it receives. */
export class TestClient {
  readonly messages: AgentToClient[] = [];
  readonly channel: Channel<AgentToClient, ClientToAgent>;
  readonly closed: Promise<Error | undefined>;
  /** Acknowledge data as it arrives (the coordinator's normal behaviour). */
  autoAck = true;
  private waiters: Waiter[] = [];
  private nextId = 1;

  private constructor(readonly socket: Socket) {
    this.channel = new Channel(socket, { check: checkAgentMessage });
    this.channel.on('protocol-error', () => {});
    this.closed = new Promise((resolve) => this.channel.once('close', resolve));
    void this.closed.then(() => {
      for (const w of this.waiters) w.reject(new Error('the agent closed the connection'));
      this.waiters = [];
    });
    this.channel.on('message', (m) => {
      this.messages.push(m);
      if (this.autoAck && m.type === 'data') {
        this.send({ type: 'ack', id: m.id, bytes: m.bytes.length });
      }
      this.waiters = this.waiters.filter((w) => {
        if (!w.match(m)) return true;
        w.resolve(m);
        return false;
      });
    });
  }

  /** Connects to `port` on loopback; the hello is in `messages` soon after. */
  static async connect(t: Teardown, port: number): Promise<TestClient> {
    return TestClient.attach(t, connect({ host: '127.0.0.1', port }));
  }

  /**
   * A client over a socket being opened (a TLS socket, one bound to a given
   * local address); resolves once `ready` (default 'connect') fires.
   */
  static async attach(
    t: Teardown,
    socket: Socket,
    ready: 'connect' | 'secureConnect' = 'connect',
  ): Promise<TestClient> {
    t.teardown(() => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      socket.once(ready, resolve);
      socket.once('error', reject);
    });
    return new TestClient(socket);
  }

  /**
   * Connects and authenticates (with `secret`, default the test agents'
   * throwaway one); resolves with the welcome.
   */
  static async ready(
    t: Teardown,
    port: number,
    secret?: Buffer | null,
    who?: Partial<AuthMessage['client']>,
  ): Promise<TestClient> {
    const client = await TestClient.connect(t, port);
    await client.authenticate(secret, undefined, who);
    return client;
  }

  send(message: ClientToAgent): void {
    this.channel.send(message);
  }

  /** The first message (already received or still to come) that matches. */
  waitFor<T extends AgentToClient>(
    match: (m: AgentToClient) => boolean,
    what = 'a message',
    timeoutMs = WAIT_MS,
  ): Promise<T> {
    const seen = this.messages.find(match);
    if (seen) return Promise.resolve(seen as T);
    return new Promise<T>((resolve, reject) => {
      if (this.channel.isClosed) {
        reject(new Error(`the connection is closed; ${what} will not come`));
        return;
      }
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      const waiter: Waiter = {
        match,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m as T);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(new Error(`${err.message} while waiting for ${what}`));
        },
      };
      this.waiters.push(waiter);
    });
  }

  /**
   * Answers the hello with a proof under `secret` (default: the test agents'
   * one); null sends an empty proof, as a client without a secret does.
   */
  /**
   * `dialledPort`: the agent's own port when the test reaches it through a
   * passive tap on loopback (the proof binds the address the client dialled).
   * `who`: what the client says about itself, over the defaults.
   */
  async authenticate(
    secret: Buffer | null = localSecret().secret,
    dialledPort?: number,
    who: Partial<AuthMessage['client']> = {},
  ): Promise<WelcomeMessage> {
    const hello = await this.waitFor<HelloMessage>((m) => m.type === 'hello', 'hello');
    const client = {
      user: userInfo().username,
      host: 'test',
      pid: process.pid,
      build: 'test',
      ...who,
    };
    const peer =
      dialledPort === undefined
        ? this.socket
        : ({ remoteAddress: this.socket.remoteAddress, remotePort: dialledPort } as Socket);
    this.send(authFor(secret ?? undefined, hello, peer, client).auth);
    return this.waitFor<WelcomeMessage>((m) => m.type === 'welcome', 'welcome');
  }

  /** Sends a job (with defaults for what the test leaves out); returns its id. */
  submit(job: Partial<JobMessage> & Pick<JobMessage, 'argv'>): number {
    const id = job.id ?? this.nextId++;
    this.send({
      type: 'job',
      cwd: job.cwd ?? process.cwd(),
      env: job.env ?? { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
      umask: job.umask ?? 0o022,
      ...job,
      id,
    } as JobMessage);
    return id;
  }

  /** The exit of job `id`, with its output per stream. */
  async result(id: number, timeoutMs = WAIT_MS): Promise<JobResult> {
    const exit = await this.waitFor<ExitMessage>(
      (m) => m.type === 'exit' && m.id === id,
      `exit of job ${id}`,
      timeoutMs,
    );
    const out = (stream: 1 | 2): Buffer =>
      Buffer.concat(
        this.messages.flatMap((m) =>
          m.type === 'data' && m.id === id && m.stream === stream ? [m.bytes] : [],
        ),
      );
    return { stdout: out(1), stderr: out(2), exit };
  }

  /** Runs `sh -c script` (or the given argv) and waits for its end. */
  async run(script: string, extra: Partial<JobMessage> = {}): Promise<JobResult> {
    return this.result(this.submit({ argv: ['/bin/sh', '-c', script], ...extra }));
  }

  /** Bytes of job `id`'s output received so far. */
  receivedBytes(id: number): number {
    let n = 0;
    for (const m of this.messages) if (m.type === 'data' && m.id === id) n += m.bytes.length;
    return n;
  }
}
