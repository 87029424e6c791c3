/**
 * A fuzzing client for the agent's wire protocol, shared by
 * test/security/fuzz.test.ts (bounded) and benchmarks/fuzz-agent.ts (long
 * runs). Each case is one connection that sends the agent something broken
 * or out of order, before or after a valid authentication: random bytes,
 * truncated frames, oversized length prefixes, invalid msgpack, wrong
 * field types, unknown types, a job before auth, auth twice, acks and
 * cancels for unknown ids, bit flips, deep nesting, huge declared sizes.
 *
 * Every job it sends would create a marker file `ran-CASE-N` in
 * `markerDir` if executed; `markerViolations` then lists those created by
 * a case whose connection was never welcomed (never authenticated). A case
 * welcomed although what it sent held no valid proof is a violation too.
 * Cases are drawn from a seeded PRNG, so a failure can be replayed.
 */
import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { PRE_AUTH_MAX_FRAME_BYTES } from '../../lib/agent/agent-session.js';
import { fuzzFrame, fuzzMessage } from './message-fuzz.js';
import { endpointOf, proveClient, verifyClientProof } from '../../lib/protocol/auth.js';
import { encodeFrame, FrameDecoder } from '../../lib/protocol/frame-codec.js';
import { checkClientMessage, PROTOCOL_VERSION } from '../../lib/protocol/messages.js';

export interface FuzzOptions {
  host?: string;
  port: number;
  secret: Buffer;
  /** Where fuzzed jobs would leave their marker files (and run: their cwd). */
  markerDir: string;
  /** Stop after this many cases… */
  cases: number;
  /** …or after this many seconds, whichever comes first. */
  seconds: number;
  /** Connections at once. */
  concurrency?: number;
  seed?: number;
  /** The first case's id (a long run in rounds keeps ids, and marker names, apart). */
  firstCase?: number;
  /** Called after every case with its kind (progress, RSS sampling, finding a crash). */
  onCase?: (tried: number, kind: string) => void;
}

export interface FuzzResult {
  tried: number;
  byKind: Record<string, number>;
  /** Cases the agent welcomed though they sent no valid proof (must be empty). */
  welcomedWithoutProof: number[];
  /** Cases that were welcomed: their jobs may legitimately have run. */
  welcomed: Set<number>;
  /** Connections the agent refused or never greeted (it was down, or busy). */
  noHello: number;
}

type Phase = 'pre' | 'post';
type Rng = () => number;

/** mulberry32: a small, fast, seedable PRNG. */
export function makeRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const int = (rng: Rng, n: number): number => Math.floor(rng() * n);
const pick = <T>(rng: Rng, items: readonly T[]): T => items[int(rng, items.length)]!;
const bytes = (rng: Rng, n: number): Buffer => {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = int(rng, 256);
  return b;
};
const frame = (body: Buffer): Buffer => {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
};

/** A value of a random type, for fields that expect something else. */
function randomValue(rng: Rng, depth = 0): unknown {
  switch (int(rng, depth > 2 ? 10 : 13)) {
    case 0:
      return null;
    case 1:
      return rng() < 0.5;
    case 2:
      return int(rng, 2 ** 31) * (rng() < 0.5 ? -1 : 1);
    case 3:
      return rng() * 1e300;
    case 4:
      return Number.MAX_SAFE_INTEGER + int(rng, 1000);
    case 5:
      return bytes(rng, int(rng, 64)).toString('latin1');
    case 6:
      return new Uint8Array(bytes(rng, int(rng, 64)));
    case 7:
      return '';
    case 8:
      return pick(rng, ['__proto__', 'constructor', 'job', 'auth', '\0', '../../etc', 'SIGKILL']);
    case 9:
      return -0.5;
    case 10:
      return Array.from({ length: int(rng, 5) }, () => randomValue(rng, depth + 1));
    case 11:
      return Object.fromEntries(
        Array.from({ length: int(rng, 5) }, () => [
          pick(rng, ['a', 'type', 'id', '__proto__', 'env', '']),
          randomValue(rng, depth + 1),
        ]),
      );
    default:
      return { type: pick(rng, ['job', 'auth', 'ping']), id: randomValue(rng, depth + 1) };
  }
}

interface CaseContext {
  rng: Rng;
  id: number;
  challenge: Uint8Array;
  /** The agent's name (hello) and its endpoint as we dialled it: both proofs cover them. */
  nodeId: string;
  endpoint: string;
  nonce: Uint8Array;
  secret: Buffer;
  markerDir: string;
  jobs: number;
}

const jobMessage = (c: CaseContext): Record<string, unknown> => ({
  type: 'job',
  id: int(c.rng, 1000),
  argv: ['/bin/sh', '-c', `touch ${join(c.markerDir, `ran-${c.id}-${c.jobs++}`)}`],
  cwd: c.markerDir,
  env: { PATH: '/usr/bin:/bin' },
  umask: 0o22,
});

const authMessage = (c: CaseContext, proof?: Uint8Array): Record<string, unknown> => ({
  type: 'auth',
  version: PROTOCOL_VERSION,
  proof: proof ?? proveClient(c.secret, c),
  client: { user: 'fuzz', host: 'fuzz', pid: 1, build: `case-${c.id}` },
  nonce: c.nonce,
  endpoint: c.endpoint,
});

const templates: ((c: CaseContext) => Record<string, unknown>)[] = [
  jobMessage,
  (c) => authMessage(c),
  (c) => ({ type: 'ack', id: int(c.rng, 10), bytes: int(c.rng, 1e6) }),
  (c) => ({ type: 'cancel', id: int(c.rng, 10), signal: 'SIGTERM' }),
  (c) => ({ type: 'probe', id: 1, path: join(c.markerDir, 'p'), content: 'x' }),
  (c) => ({ type: 'ping', seq: int(c.rng, 100) }),
  () => ({ type: 'status-request', id: 1 }),
  (c) => ({ type: 'withdraw', id: int(c.rng, 10) }),
  () => ({ type: 'error', code: 'X', message: 'y' }),
];

/** One case's bytes, by kind; `end` = half-close after sending them. */
type Payload = { data: Buffer[]; end?: boolean };
type Kind = (c: CaseContext, phase: Phase) => Payload;

export const KINDS: Record<string, Kind> = {
  'random bytes': (c) => ({ data: [bytes(c.rng, int(c.rng, 4096))] }),
  'truncated frame': (c) => {
    const f = encodeFrame(pick(c.rng, templates)(c));
    return { data: [f.subarray(0, 1 + int(c.rng, f.length - 1))], end: true };
  },
  'oversized length prefix': (c) => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(
      PRE_AUTH_MAX_FRAME_BYTES + 1 + int(c.rng, 2 ** 32 - PRE_AUTH_MAX_FRAME_BYTES - 2),
    );
    return { data: [head, bytes(c.rng, int(c.rng, 1024))] };
  },
  'length prefix over 16 MiB': (c, phase) => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(phase === 'post' ? 0xffffffff : 16 * 1024 * 1024 + 1);
    return { data: [head, bytes(c.rng, 100)] };
  },
  'invalid msgpack': (c) => {
    const bodies = [
      bytes(c.rng, 1 + int(c.rng, 256)),
      Buffer.from([0xc1]),
      Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x61]),
      Buffer.from([0x81, 0xa4, 0x74, 0x79, 0x70]),
      Buffer.from([0xc7, 0xff, 0x01]),
    ];
    return { data: [frame(pick(c.rng, bodies))] };
  },
  'huge declared container': (c) => {
    const heads = [0xdd, 0xdf, 0xdb, 0xc6]; // array32, map32, str32, bin32
    const body = Buffer.from([pick(c.rng, heads), 0xff, 0xff, 0xff, 0xfe, 0x01, 0x02]);
    return { data: [frame(body)] };
  },
  'deep nesting': (c, phase) => {
    const limit = phase === 'pre' ? PRE_AUTH_MAX_FRAME_BYTES : 1 << 20;
    const depth = Math.min(limit - 1, 1000 + int(c.rng, 200_000));
    const body = Buffer.alloc(depth + 1, pick(c.rng, [0x91, 0x81]));
    body[depth] = 0xc0;
    return { data: [frame(body)] };
  },
  'wrong field types': (c) => {
    const m = pick(c.rng, templates)(c);
    const keys = Object.keys(m);
    for (let i = 0, n = 1 + int(c.rng, 3); i < n; i++) {
      m[pick(c.rng, [...keys, 'extra', 'nonce', 'tty', 'mergeOutput'])] = randomValue(c.rng);
    }
    return { data: [encodeFrame(m)] };
  },
  'unknown message type': (c) => ({
    data: [encodeFrame({ type: randomValue(c.rng), id: 1, argv: ['/bin/true'] })],
  }),
  'not a map': (c) => ({
    data: [encodeFrame(pick(c.rng, [[jobMessage(c)], 'job', 42, null, true]))],
  }),
  'a job': (c) => ({ data: [encodeFrame(jobMessage(c))] }),
  'auth with a wrong proof, then a job': (c) => ({
    data: [encodeFrame(authMessage(c, bytes(c.rng, 32))), encodeFrame(jobMessage(c))],
  }),
  'auth twice': (c) => ({
    data: [encodeFrame(authMessage(c)), encodeFrame(authMessage(c)), encodeFrame(jobMessage(c))],
  }),
  'ack and cancel for unknown ids': (c) => ({
    data: Array.from({ length: 1 + int(c.rng, 8) }, () =>
      encodeFrame(
        pick(c.rng, [
          { type: 'ack', id: int(c.rng, 2 ** 31), bytes: int(c.rng, 2 ** 31) },
          { type: 'ack', id: 1, bytes: -5 },
          { type: 'cancel', id: int(c.rng, 2 ** 31) },
          { type: 'cancel', id: 1, signal: pick(c.rng, ['SIGNOPE', '', 'KILL', '9', 'SIGSTOP']) },
        ]),
      ),
    ),
  }),
  'bit flips': (c, phase) => {
    const f = encodeFrame(phase === 'pre' ? authMessage(c) : jobMessage(c));
    for (let i = 0, n = 1 + int(c.rng, 4); i < n; i++) {
      const at = int(c.rng, f.length);
      f[at] = f[at]! ^ (1 << int(c.rng, 8));
    }
    return { data: [f] };
  },
  'valid frames, odd chunks': (c, phase) => {
    const all = Buffer.concat(
      [...(phase === 'pre' ? [authMessage(c)] : []), jobMessage(c), { type: 'ping', seq: 1 }].map(
        encodeFrame,
      ),
    );
    const out: Buffer[] = [];
    for (let at = 0; at < all.length;) {
      const n = 1 + int(c.rng, 7);
      out.push(all.subarray(at, at + n));
      at += n;
    }
    return { data: out };
  },
  'schema-aware mutation': (c) => ({
    data: Array.from({ length: 1 + int(c.rng, 3) }, () =>
      fuzzFrame(c.rng, fuzzMessage(c.rng, 'clientToAgent')),
    ),
  }),
  'many small frames': (c) => ({
    data: [
      Buffer.concat(
        Array.from({ length: 50 + int(c.rng, 500) }, () =>
          encodeFrame({ type: 'ping', seq: int(c.rng, 1e6) }),
        ),
      ),
    ],
  }),
};

/** Whether `sent` starts with a frame the agent must accept as a valid auth. */
function holdsValidAuth(sent: Buffer, c: CaseContext): boolean {
  const decoder = new FrameDecoder(PRE_AUTH_MAX_FRAME_BYTES);
  let first: unknown;
  try {
    first = decoder.push(sent)[0];
  } catch {
    return false;
  }
  const m = first === undefined ? 'none' : checkClientMessage(first);
  if (typeof m === 'string' || m.type !== 'auth' || m.version !== PROTOCOL_VERSION) return false;
  if (m.nonce === undefined || m.endpoint !== c.endpoint) return false;
  return verifyClientProof(c.secret, { ...c, nonce: m.nonce, endpoint: m.endpoint }, m.proof);
}

interface Conn {
  socket: Socket;
  types: string[];
  closed: Promise<void>;
  waitFor(type: string, ms: number): Promise<unknown>;
}

function open(host: string, port: number): Conn {
  const socket = connect({ host, port });
  const decoder = new FrameDecoder(64 * 1024 * 1024);
  const types: string[] = [];
  const received: unknown[] = [];
  let notify = (): void => {};
  socket.on('data', (chunk: Buffer) => {
    try {
      for (const m of decoder.push(chunk)) {
        received.push(m);
        types.push(String((m as { type?: unknown }).type));
      }
    } catch {
      socket.destroy();
    }
    notify();
  });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) =>
    socket.on('close', () => {
      notify();
      resolve();
    }),
  );
  const waitFor = (type: string, ms: number): Promise<unknown> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), ms);
      const done = (v: unknown): void => {
        clearTimeout(timer);
        notify = () => {};
        resolve(v);
      };
      notify = () => {
        const m = received.find((x) => (x as { type?: unknown }).type === type);
        if (m !== undefined) done(m);
        else if (socket.destroyed) done(undefined);
      };
      notify();
    });
  return { socket, types, closed, waitFor };
}

/** Runs cases until `cases` or `seconds` run out; see the file comment. */
export async function fuzzAgent(opts: FuzzOptions): Promise<FuzzResult> {
  const host = opts.host ?? '127.0.0.1';
  const rng = makeRng(opts.seed ?? 0x5eed);
  const kindNames = Object.keys(KINDS);
  const result: FuzzResult = {
    tried: 0,
    byKind: {},
    welcomedWithoutProof: [],
    welcomed: new Set(),
    noHello: 0,
  };
  const deadline = Date.now() + opts.seconds * 1000;
  let next = 0;

  const runCase = async (id: number): Promise<void> => {
    const caseRng = makeRng(Math.floor(rng() * 2 ** 32));
    const kindName = pick(caseRng, kindNames);
    const phase: Phase = caseRng() < 0.5 ? 'pre' : 'post';
    const label = `${kindName} (${phase === 'pre' ? 'before' : 'after'} auth)`;
    result.byKind[label] = (result.byKind[label] ?? 0) + 1;
    const conn = open(host, opts.port);
    try {
      const hello = (await conn.waitFor('hello', 3000)) as
        { challenge?: Uint8Array; nodeId?: string } | undefined;
      if (!hello?.challenge || hello.nodeId === undefined) {
        result.noHello++;
        return;
      }
      const c: CaseContext = {
        rng: caseRng,
        id,
        challenge: hello.challenge,
        nodeId: hello.nodeId,
        endpoint: endpointOf(conn.socket.remoteAddress, conn.socket.remotePort),
        nonce: new Uint8Array(32).fill(7),
        secret: opts.secret,
        markerDir: opts.markerDir,
        jobs: 0,
      };
      let validAuth = false;
      if (phase === 'post') {
        conn.socket.write(encodeFrame(authMessage(c)));
        validAuth = true;
        if (!(await conn.waitFor('welcome', 3000))) return;
      }
      const payload = KINDS[kindName]!(c, phase);
      if (phase === 'pre') validAuth = holdsValidAuth(Buffer.concat(payload.data), c);
      for (const chunk of payload.data) {
        if (conn.socket.destroyed) break;
        conn.socket.write(chunk);
      }
      if (payload.end) conn.socket.end();
      else if (!conn.socket.destroyed) conn.socket.write(encodeFrame({ type: 'ping', seq: -1 }));
      // The agent closes on bad input; otherwise its pong says it read everything.
      await Promise.race([conn.closed, conn.waitFor('pong', 1500)]);
      if (conn.types.includes('welcome')) {
        result.welcomed.add(id);
        if (!validAuth) result.welcomedWithoutProof.push(id);
      }
    } finally {
      conn.socket.destroy();
      result.tried++;
      opts.onCase?.(result.tried, label);
    }
  };

  const worker = async (): Promise<void> => {
    while (next < opts.cases && Date.now() < deadline)
      await runCase((opts.firstCase ?? 0) + next++);
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 16 }, worker));
  return result;
}

/** Marker files of jobs from cases that were never welcomed: each one is a job that ran unauthenticated. */
export function markerViolations(markerDir: string, welcomed: ReadonlySet<number>): string[] {
  return readdirSync(markerDir).filter((name) => {
    const m = /^ran-(\d+)-\d+$/.exec(name);
    return m !== null && !welcomed.has(Number(m[1]));
  });
}

/** Every marker file (jobs that ran). */
export function markers(markerDir: string): string[] {
  return readdirSync(markerDir).filter((name) => name.startsWith('ran-'));
}
