/**
 * What TLS (`mpm agent --tls`, `mpmake --mp-tls`) costs on the agent
 * channel, against the same agent setup without it:
 *
 *   node dist/benchmarks/tls-cost.js [--mib 256] [--jobs 200] [--runs 5]
 *
 * - throughput: one job writes MIB MiB to stdout (`head -c`), streamed
 *   through one agent to a client that acks as it reads (the coordinator's
 *   flow control); MB/s from sending the job to its exit, and the agent's
 *   CPU per MiB;
 * - latency: JOBS trivial jobs (`/bin/true`) one after another; ms per job;
 * - handshake: connect to welcome, ms.
 * Two loopback agents with the same secret, one with --tls; variants run
 * interleaved, medians reported.
 */
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnLocalAgent, type LocalAgent } from '../lib/agent/spawn-agent.js';
import { authFor } from '../lib/client/agent-dial.js';
import { Channel } from '../lib/protocol/channel.js';
import {
  checkAgentMessage,
  type AgentToClient,
  type ClientToAgent,
  type JobMessage,
} from '../lib/protocol/messages.js';
import { connectTls } from '../lib/protocol/tls.js';
import {
  benchEnv,
  fmt,
  interleave,
  isMain,
  machine,
  markdownTable,
  median,
  numberOptions,
  processCpuMs,
  writeResults,
} from './common.js';

export interface TlsCostOptions {
  mib: number;
  jobs: number;
  runs: number;
}

interface Sample {
  handshakeMs: number;
  mbPerSec: number;
  agentCpuMsPerMib: number;
  msPerJob: number;
}

type Variant = 'plain' | 'tls';

/** A minimal protocol client: connect, authenticate, run jobs one at a time. */
class BenchClient {
  private waiting:
    | {
        match: (m: AgentToClient) => boolean;
        resolve(m: AgentToClient): void;
        reject(e: Error): void;
      }
    | undefined;
  private nextId = 1;

  private constructor(private readonly channel: Channel<AgentToClient, ClientToAgent>) {
    channel.on('message', (m) => {
      if (m.type === 'data') channel.send({ type: 'ack', id: m.id, bytes: m.bytes.length });
      const w = this.waiting;
      if (w?.match(m)) {
        this.waiting = undefined;
        w.resolve(m);
      }
    });
    channel.on('close', (err) => this.waiting?.reject(err ?? new Error('connection closed')));
  }

  static async open(port: number, secret: Buffer, tls: boolean): Promise<BenchClient> {
    const socket = tls
      ? connectTls('127.0.0.1', port, secret)
      : connect({ port, host: '127.0.0.1' });
    const client = new BenchClient(new Channel(socket, { check: checkAgentMessage }));
    const hello = await client.next((m) => m.type === 'hello');
    if (hello.type !== 'hello') throw new Error('no hello');
    const who = { user: 'bench', host: 'bench', pid: process.pid, build: 'tls-cost' };
    client.channel.send(authFor(secret, hello, socket, who).auth);
    await client.next((m) => m.type === 'welcome');
    return client;
  }

  private next(match: (m: AgentToClient) => boolean): Promise<AgentToClient> {
    return new Promise((resolve, reject) => (this.waiting = { match, resolve, reject }));
  }

  /** Runs `argv` and resolves with its stdout byte count once it exits. */
  async run(argv: string[]): Promise<number> {
    const id = this.nextId++;
    let bytes = 0;
    const done = this.next((m) => {
      if (m.type === 'data' && m.id === id) bytes += m.bytes.length;
      return m.type === 'exit' && m.id === id;
    });
    const job: JobMessage = {
      type: 'job',
      id,
      argv,
      cwd: tmpdir(),
      env: { PATH: '/usr/bin:/bin' },
      umask: 0o22,
    };
    this.channel.send(job);
    const exit = await done;
    if (exit.type !== 'exit' || exit.code !== 0) throw new Error(`job ${argv.join(' ')} failed`);
    return bytes;
  }

  close(): void {
    this.channel.destroy();
  }
}

export async function runTlsCost(options: TlsCostOptions): Promise<unknown> {
  const { mib, jobs, runs } = options;
  const dir = mkdtempSync(join(tmpdir(), 'mpmake-bench-tls-'));
  const secretPath = join(dir, 'secret');
  const secret = Buffer.from('tls-cost benchmark secret');
  writeFileSync(secretPath, secret, { mode: 0o600 });
  const agents: Record<Variant, LocalAgent> = {
    plain: await spawnLocalAgent({
      slots: 1,
      id: 'bench-plain',
      secretFile: secretPath,
      env: benchEnv(),
    }),
    tls: await spawnLocalAgent({
      slots: 1,
      id: 'bench-tls',
      secretFile: secretPath,
      env: benchEnv(),
      extraArgs: ['--tls'],
    }),
  };
  try {
    const sample = async (variant: Variant): Promise<Sample> => {
      const agent = agents[variant];
      const t0 = performance.now();
      const client = await BenchClient.open(agent.port, secret, variant === 'tls');
      const handshakeMs = performance.now() - t0;
      try {
        const cpu0 = processCpuMs(agent.pid);
        const t1 = performance.now();
        const got = await client.run(['head', '-c', String(mib * 1024 * 1024), '/dev/zero']);
        const streamMs = performance.now() - t1;
        const cpuMs = processCpuMs(agent.pid) - cpu0;
        if (got !== mib * 1024 * 1024) throw new Error(`got ${got} bytes`);
        const t2 = performance.now();
        for (let i = 0; i < jobs; i++) await client.run(['/bin/true']);
        const msPerJob = (performance.now() - t2) / jobs;
        return {
          handshakeMs,
          mbPerSec: (mib * 1.048576) / (streamMs / 1000),
          agentCpuMsPerMib: cpuMs / mib,
          msPerJob,
        };
      } finally {
        client.close();
      }
    };
    // One untimed warm-up each.
    await sample('plain');
    await sample('tls');
    const samples = await interleave<Variant, Sample>(
      runs,
      { plain: () => sample('plain'), tls: () => sample('tls') },
      (v, round, s) =>
        process.stdout.write(
          `round ${round + 1} ${v.padEnd(5)}: ${fmt(s.mbPerSec, 0)} MB/s, ${fmt(s.msPerJob)} ms/job, ` +
            `handshake ${fmt(s.handshakeMs)} ms\n`,
        ),
    );
    const med = (v: Variant, k: keyof Sample): number => median(samples[v].map((s) => s[k]));
    const medians = Object.fromEntries(
      (['plain', 'tls'] as Variant[]).map((v) => [
        v,
        {
          mbPerSec: med(v, 'mbPerSec'),
          agentCpuMsPerMib: med(v, 'agentCpuMsPerMib'),
          msPerJob: med(v, 'msPerJob'),
          handshakeMs: med(v, 'handshakeMs'),
        },
      ]),
    ) as Record<Variant, Record<keyof Sample, number>>;
    const ratio = {
      throughput: medians.tls.mbPerSec / medians.plain.mbPerSec,
      cpuPerMib: medians.tls.agentCpuMsPerMib / medians.plain.agentCpuMsPerMib,
      msPerJob: medians.tls.msPerJob / medians.plain.msPerJob,
    };
    const rows = (['plain', 'tls'] as Variant[]).map((v) => [
      v,
      fmt(medians[v].mbPerSec, 0),
      fmt(medians[v].agentCpuMsPerMib),
      fmt(medians[v].msPerJob),
      fmt(medians[v].handshakeMs),
    ]);
    const markdown =
      `# tls-cost: TLS on the agent channel\n\n` +
      `${mib} MiB of job output through one loopback agent, then ${jobs} trivial jobs, ` +
      `${runs} interleaved runs, medians. Node ${process.version}, ${machine().cpus} CPUs ` +
      `(${machine().cpuModel}).\n\n` +
      markdownTable(
        ['variant', 'MB/s', 'agent CPU ms/MiB', 'ms per trivial job', 'handshake ms'],
        rows,
      ) +
      `\nTLS over plain: ${fmt(ratio.throughput * 100, 0)}% of the throughput, ` +
      `${fmt(ratio.cpuPerMib, 2)}× the agent's CPU per MiB, ${fmt(ratio.msPerJob, 2)}× the time ` +
      `per trivial job, and ${fmt(medians.tls.handshakeMs - medians.plain.handshakeMs)} ms more ` +
      `per connection.\n`;
    const files = await writeResults(
      'tls-cost',
      { options, machine: machine(), medians, ratio, samples },
      markdown,
    );
    process.stdout.write(`\n${markdown}\nwrote ${files.join(', ')}\n`);
    return { medians, ratio };
  } finally {
    await Promise.all(Object.values(agents).map((a) => a.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  try {
    const o = numberOptions(process.argv.slice(2), ['mib', 'jobs', 'runs']);
    await runTlsCost({ mib: o['mib'] ?? 256, jobs: o['jobs'] ?? 200, runs: o['runs'] ?? 5 });
  } catch (err) {
    process.stderr.write(`tls-cost: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}
