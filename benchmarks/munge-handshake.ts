/**
 * What a MUNGE handshake (`mpm agent --auth munge`, `MPMAKE_AUTH=munge`)
 * costs, and where it goes:
 *
 *   node dist/benchmarks/munge-handshake.js [--runs 10] [--clients 12]   (as root)
 *
 * One munged of the benchmark's own (fixtures/munged.ts) and one root
 * loopback agent with `--auth munge --allow-root` (the benchmark dials as
 * root). A handshake is timed from connect to the agent's credential
 * checked (what mpmake waits for before a node is ready), split into the
 * client's MUNGE work (its credential; the check of the agent's) and the
 * agent's (auth sent to welcome: decode, user lookup, its own credential).
 * Alone (RUNS handshakes one after another) and CLIENTS at once (RUNS
 * rounds); medians, and the slowest of the concurrent ones against
 * mpmake's default connect timeout (3000 ms). Beside each, the same with
 * a shared-secret agent (no MUNGE), interleaved: what MUNGE adds.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnLocalAgent } from '../lib/agent/spawn-agent.js';
import { authFor } from '../lib/client/agent-dial.js';
import { agentCredentialProblem, clientCredential } from '../lib/client/munge-client.js';
import { Channel } from '../lib/protocol/channel.js';
import {
  checkAgentMessage,
  type AgentToClient,
  type ClientToAgent,
  type HelloMessage,
  type WelcomeMessage,
} from '../lib/protocol/messages.js';
import { channelBinding, mungeDecode, mungeEncode } from '../lib/protocol/munge.js';
import { startMunged } from '../fixtures/munged.js';
import {
  benchEnv,
  fmt,
  interleave,
  isMain,
  machine,
  markdownTable,
  median,
  numberOptions,
  writeResults,
} from './common.js';

export interface MungeHandshakeOptions {
  runs: number;
  clients: number;
}

interface Handshake {
  totalMs: number;
  clientMungeMs: number;
  agentMs: number;
}

/** mpmake's default --mp-connect-timeout. */
const DEFAULT_CONNECT_TIMEOUT_MS = 3000;

type Variant = 'munge' | 'secret';

/**
 * One handshake as mpmake makes it (agent-dial.ts), timed by phase: with
 * `munge` (munged's socket) a MUNGE one, otherwise a shared-secret one.
 */
async function handshake(
  port: number,
  munge: string | undefined,
  secret: Buffer,
): Promise<Handshake> {
  const t0 = performance.now();
  const sock = connect({ host: '127.0.0.1', port });
  const channel = new Channel<AgentToClient, ClientToAgent>(sock, { check: checkAgentMessage });
  const next = <M extends AgentToClient>(type: M['type']): Promise<M> =>
    new Promise((resolve, reject) => {
      channel.on('message', (m) => {
        if (m.type === type) resolve(m as M);
        else if (m.type === 'error') reject(new Error(`${m.message} [${m.code}]`));
      });
      channel.on('close', (err) => reject(err ?? new Error('closed')));
    });
  try {
    const hello = await next<HelloMessage>('hello');
    const t1 = performance.now();
    const who = { user: 'bench', host: 'bench', pid: process.pid, build: 'munge-handshake' };
    if (munge === undefined) {
      const welcomed = next<WelcomeMessage>('welcome');
      channel.send(authFor(secret, hello, sock, who).auth);
      const t2 = performance.now();
      await welcomed;
      const t3 = performance.now();
      return { totalMs: t3 - t0, clientMungeMs: 0, agentMs: t3 - t2 };
    }
    const { auth, binding } = authFor(undefined, hello, sock, who, true);
    const mode = { socket: munge, from: 'the benchmark' };
    const credential = await clientCredential(binding!, channelBinding(sock), mode);
    const welcomed = next<WelcomeMessage>('welcome');
    channel.send({ ...auth, munge: credential });
    const t2 = performance.now();
    const welcome = await welcomed;
    const t3 = performance.now();
    const problem = await agentCredentialProblem(
      welcome.munge,
      binding!,
      channelBinding(sock),
      mode,
    );
    if (problem) throw problem;
    const t4 = performance.now();
    return { totalMs: t4 - t0, clientMungeMs: t2 - t1 + (t4 - t3), agentMs: t3 - t2 };
  } finally {
    channel.destroy();
  }
}

interface Summary {
  totalMs: number;
  clientMungeMs: number;
  agentMs: number;
  slowestMs: number;
}

function summary(hs: Handshake[]): Summary {
  const med = (k: keyof Handshake): number => median(hs.map((h) => h[k]));
  return {
    totalMs: med('totalMs'),
    clientMungeMs: med('clientMungeMs'),
    agentMs: med('agentMs'),
    slowestMs: Math.max(...hs.map((h) => h.totalMs)),
  };
}

export async function runMungeHandshake(options: MungeHandshakeOptions): Promise<unknown> {
  const { runs, clients } = options;
  const dir = mkdtempSync(join(tmpdir(), 'mpmake-bench-munge-'));
  const secret = Buffer.from('munge-handshake benchmark secret');
  const secretFile = join(dir, 'secret');
  writeFileSync(secretFile, secret, { mode: 0o600 });
  const munged = await startMunged();
  const agents = await Promise.all([
    spawnLocalAgent({
      slots: 1,
      id: 'bench-munge',
      secretFile: false,
      env: benchEnv(),
      extraArgs: ['--auth', 'munge', '--munge-socket', munged.socket, '--allow-root'],
    }),
    spawnLocalAgent({ slots: 1, id: 'bench-secret', secretFile, env: benchEnv() }),
  ]);
  const dial: Record<Variant, () => Promise<Handshake>> = {
    munge: () => handshake(agents[0].port, munged.socket, secret),
    secret: () => handshake(agents[1].port, undefined, secret),
  };
  try {
    // The MUNGE operations alone, in this process.
    const encodeMs: number[] = [];
    const decodeMs: number[] = [];
    for (let i = 0; i < runs; i++) {
      const a = performance.now();
      const cred = await mungeEncode(Buffer.from(`bench ${i}`), munged.socket);
      const b = performance.now();
      await mungeDecode(cred, munged.socket);
      decodeMs.push(performance.now() - b);
      encodeMs.push(b - a);
    }
    await dial.munge(); // warm-up, untimed
    await dial.secret();
    const alone = await interleave(runs, dial);
    const together = await interleave(
      runs,
      {
        munge: () => Promise.all(Array.from({ length: clients }, dial.munge)),
        secret: () => Promise.all(Array.from({ length: clients }, dial.secret)),
      },
      (v, round, hs) =>
        process.stdout.write(
          `round ${round + 1} ${v.padEnd(6)}: ${clients} at once, slowest ` +
            `${fmt(Math.max(...hs.map((h) => h.totalMs)), 0)} ms\n`,
        ),
    );
    const result = {
      encodeMs: median(encodeMs),
      decodeMs: median(decodeMs),
      alone: { munge: summary(alone.munge), secret: summary(alone.secret) },
      together: { munge: summary(together.munge.flat()), secret: summary(together.secret.flat()) },
    };
    const row = (name: string, h: Summary, mungeCols: boolean): string[] => [
      name,
      fmt(h.totalMs, 1),
      fmt(h.slowestMs, 0),
      mungeCols ? fmt(h.clientMungeMs, 1) : '–',
      fmt(h.agentMs, 1),
    ];
    const slowest = result.together.munge.slowestMs;
    const met = slowest < DEFAULT_CONNECT_TIMEOUT_MS;
    const markdown =
      `# munge-handshake: what a MUNGE handshake costs\n\n` +
      `One root loopback agent with \`--auth munge\` and one with the shared secret only, ` +
      `one munged; ${runs} handshakes alone, ${runs} rounds of ${clients} at once, ` +
      `interleaved; medians. Node ${process.version}, ${machine().cpus} CPUs ` +
      `(${machine().cpuModel}), load ${machine().loadavg1}.\n\n` +
      `MUNGE alone, in one process: encode ${fmt(result.encodeMs, 1)} ms, decode ` +
      `${fmt(result.decodeMs, 1)} ms.\n\n` +
      markdownTable(
        [
          'handshakes',
          'connect to checked welcome, ms',
          'slowest, ms',
          "client's MUNGE, ms",
          "agent's part, ms",
        ],
        [
          row('MUNGE, alone', result.alone.munge, true),
          row('secret, alone', result.alone.secret, false),
          row(`MUNGE, ${clients} at once`, result.together.munge, true),
          row(`secret, ${clients} at once`, result.together.secret, false),
        ],
      ) +
      `\nSlowest MUNGE handshake of the ${clients} at once: ${fmt(slowest, 0)} ms; target: ` +
      `under mpmake's default connect timeout (${DEFAULT_CONNECT_TIMEOUT_MS} ms): ` +
      `${met ? 'met' : 'MISSED'}.\n`;
    const files = await writeResults(
      'munge-handshake',
      { options, machine: machine(), result, alone, together },
      markdown,
    );
    process.stdout.write(`\n${markdown}\nwrote ${files.join(', ')}\n`);
    return result;
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    await munged.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  try {
    const o = numberOptions(process.argv.slice(2), ['runs', 'clients']);
    await runMungeHandshake({ runs: o['runs'] ?? 10, clients: o['clients'] ?? 12 });
  } catch (err) {
    process.stderr.write(`munge-handshake: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}
