/**
 * A structure-aware generator over the decoded message space: valid
 * messages built from the wire schemas themselves (lib/protocol/messages.ts),
 * then mutated the ways a hostile peer would: wrong types, objects whose
 * toString/valueOf cannot be called, prototype keys, extension types,
 * huge and unsafe numbers, deep nesting, big sizes, missing and extra
 * fields, one message's fields under another's type. `fuzzDecoded` runs
 * cases through the real frame codec and validators, in process, and
 * counts anything that throws (each one would be a crash of a peer).
 */
import type { TSchema } from '@sinclair/typebox';
import { Packr } from 'msgpackr';
import { encodeFrame, FrameDecoder } from '../../lib/protocol/frame-codec.js';
import {
  checkAgentMessage,
  checkClientMessage,
  messageSchemas,
} from '../../lib/protocol/messages.js';

export type Rng = () => number;
const int = (rng: Rng, n: number): number => Math.floor(rng() * n);
const pick = <T>(rng: Rng, items: readonly T[]): T => items[int(rng, items.length)]!;

/** Keys that reach prototypes or shadow Object methods if anything assigns them blindly. */
export const PROTO_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'valueOf',
  'hasOwnProperty',
  'toJSON',
];

// Encodes BigInt as int64/uint64 and keeps Date/RegExp/Set/Error as msgpackr's extensions.
const odd = new Packr({ useRecords: false, moreTypes: true, largeBigIntToFloat: false });

/** A value of some hostile shape, for a field that expects something else. */
export function hostileValue(rng: Rng, depth = 0): unknown {
  switch (int(rng, depth > 2 ? 16 : 20)) {
    case 0:
      return { toString: 0, valueOf: 0 };
    case 1:
      return pick(rng, [NaN, Infinity, -Infinity, -0, 1e308, 5e-324]);
    case 2:
      return pick(rng, [2 ** 53, 2 ** 64, -(2 ** 63), Number.MAX_SAFE_INTEGER + 2, 0.5, -1]);
    case 3:
      return pick(rng, [2n ** 64n - 1n, -(2n ** 63n), 2n ** 53n + 1n]);
    case 4:
      return new Date(int(rng, 2 ** 40));
    case 5:
      return pick(rng, [/x/g, new Set([1, 2]), new Error('constructor')]);
    case 6:
      return new Uint8Array(int(rng, 128)).fill(int(rng, 256));
    case 7:
      return 'x'.repeat(pick(rng, [0, 1, 1025, 40_000]));
    case 8:
      return pick(rng, [...PROTO_KEYS, '\0', '\u202e', '../../etc/passwd', 'SIGKILL', '']);
    case 9:
      return null;
    case 10:
      return rng() < 0.5;
    case 11:
      return int(rng, 2 ** 31) * (rng() < 0.5 ? -1 : 1);
    case 12:
      return Object.fromEntries([[pick(rng, PROTO_KEYS), hostileValue(rng, depth + 1)]]);
    case 13:
      return { type: pick(rng, ['job', 'auth', 'welcome', 'hello']), id: 1, toString: 0 };
    case 14:
      return nested(int(rng, 200), rng() < 0.5);
    case 15:
      return undefined;
    case 16:
      return Array.from({ length: int(rng, 6) }, () => hostileValue(rng, depth + 1));
    case 17:
      return Object.fromEntries(
        Array.from({ length: int(rng, 6) }, () => [
          pick(rng, ['a', 'type', 'id', '__proto__', 'env', '']),
          hostileValue(rng, depth + 1),
        ]),
      );
    case 18:
      return Array.from({ length: 1 + int(rng, 3000) }, (_, i) => i);
    default:
      return Object.fromEntries(Array.from({ length: 1 + int(rng, 3000) }, (_, i) => [`k${i}`, i]));
  }
}

function nested(depth: number, arrays: boolean): unknown {
  let v: unknown = 0;
  for (let i = 0; i < depth; i++) v = arrays ? [v] : { a: v };
  return v;
}

type S = TSchema & Record<string, unknown>;

/** A value the schema accepts (a valid message when given a message schema). */
export function validValue(rng: Rng, schema: TSchema): unknown {
  const s = schema as S;
  if ('const' in s) return s['const'];
  if (Array.isArray(s['anyOf'])) return validValue(rng, pick(rng, s['anyOf'] as TSchema[]));
  switch (s['type']) {
    case 'object': {
      const out: Record<string, unknown> = {};
      const props = (s['properties'] ?? {}) as Record<string, TSchema>;
      const required = new Set((s['required'] ?? []) as string[]);
      for (const [k, p] of Object.entries(props)) {
        if (required.has(k) || rng() < 0.5) out[k] = validValue(rng, p);
      }
      const pattern = s['patternProperties'] as Record<string, TSchema> | undefined;
      if (pattern) {
        const value = Object.values(pattern)[0]!;
        for (let i = int(rng, 4); i > 0; i--) out[`K${int(rng, 100)}`] = validValue(rng, value);
      }
      return out;
    }
    case 'array': {
      const min = (s['minItems'] as number | undefined) ?? 0;
      return Array.from({ length: min + int(rng, 3) }, () =>
        validValue(rng, s['items'] as TSchema),
      );
    }
    case 'integer': {
      const min = Math.max((s['minimum'] as number | undefined) ?? -1000, -1000);
      const max = Math.min((s['maximum'] as number | undefined) ?? 1000, 1000);
      return min + int(rng, max - min + 1);
    }
    case 'number':
      return rng() * 1000;
    case 'string':
      return pick(rng, ['', 'a', 'node-1', '/tmp', 'SIGTERM']);
    case 'boolean':
      return rng() < 0.5;
    case 'null':
      return null;
    case 'Uint8Array':
      return new Uint8Array(
        Math.max((s['minByteLength'] as number | undefined) ?? 0, int(rng, 33)),
      ).fill(7);
    default:
      return null;
  }
}

/** A message of either direction, valid, then (mostly) mutated. */
export function fuzzMessage(rng: Rng, direction?: 'agentToClient' | 'clientToAgent'): unknown {
  const dir = direction ?? pick(rng, ['agentToClient', 'clientToAgent'] as const);
  const schemas: readonly TSchema[] = messageSchemas[dir];
  const m = validValue(rng, pick(rng, schemas)) as Record<string, unknown>;
  const mutations = int(rng, 4);
  for (let i = 0; i < mutations; i++) {
    const keys = Object.keys(m);
    switch (int(rng, 7)) {
      case 0:
      case 1:
      case 2:
        m[pick(rng, keys)] = hostileValue(rng);
        break;
      case 3:
        delete m[pick(rng, keys)];
        break;
      case 4:
        m[pick(rng, [...PROTO_KEYS, 'extra', 'nonce', 'tty', 'proof', 'endpoint'])] =
          hostileValue(rng);
        break;
      case 5: {
        // Another message's type over this one's fields.
        const other = validValue(rng, pick(rng, schemas)) as { type: unknown };
        m['type'] = other.type;
        break;
      }
      default: {
        // A nested field replaced deep inside (env, client, tty, status lists).
        const k = pick(rng, keys);
        const v = m[k];
        if (v && typeof v === 'object' && !(v instanceof Uint8Array)) {
          const inner = Object.keys(v);
          if (inner.length > 0)
            (v as Record<string, unknown>)[pick(rng, inner)] = hostileValue(rng);
        }
      }
    }
  }
  return m;
}

/**
 * A frame for `value`: plain msgpack, or with extension types and odd
 * encodings (BigInt as 64-bit ints, Date/RegExp/Set/Error extensions, a raw
 * ext of a random type added as a field, a `__proto__` key written raw).
 */
export function fuzzFrame(rng: Rng, value: unknown): Buffer {
  let body: Buffer;
  try {
    body = rng() < 0.5 ? encodeFrame(value).subarray(4) : odd.pack(value);
  } catch {
    body = odd.pack(String(typeof value));
  }
  if (rng() < 0.3 && body.length > 0 && body[0]! >= 0x80 && body[0]! < 0x8f) {
    // One more entry in a fixmap: a raw key and a raw value.
    const key = pick(rng, [
      Buffer.from([0xa9, ...Buffer.from('__proto__')]),
      Buffer.from([0xa4, ...Buffer.from('type')]),
      Buffer.from([0xa2, ...Buffer.from('id')]),
    ]);
    const ext = pick(rng, [
      Buffer.from([0xd4, int(rng, 256), int(rng, 256)]), // fixext 1, any type
      Buffer.from([0xd7, 0xff, 0, 0, 0, 0, 0, 0, 0, 1]), // timestamp 64
      Buffer.from([0xc7, 3, int(rng, 256), 1, 2, 3]), // ext 8
      Buffer.from([0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // uint64 max
      Buffer.from([0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]), // int64 min
      Buffer.from([0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0]), // NaN
      Buffer.from([0x81, 0xa8, ...Buffer.from('toString'), 0x00]), // {toString: 0}
    ]);
    body = Buffer.concat([Buffer.from([body[0]! + 1]), body.subarray(1), key, ext]);
  }
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

export interface DecodedFuzzResult {
  cases: number;
  /** Frames the decoder refused (a protocol error: fine). */
  undecodable: number;
  accepted: number;
  rejected: number;
  /** Exceptions out of the validators, or accepted values that break what the code relies on. */
  crashes: number;
  /** The first few of them. */
  examples: string[];
}

/**
 * `cases` frames through the real decoder and both validators, in process.
 * A crash is an exception out of a validator, or an accepted message whose
 * `type` is not a string (what the old code coerced and died on).
 */
export function fuzzDecoded(rng: Rng, cases: number): DecodedFuzzResult {
  const result: DecodedFuzzResult = {
    cases,
    undecodable: 0,
    accepted: 0,
    rejected: 0,
    crashes: 0,
    examples: [],
  };
  const crash = (why: string): void => {
    result.crashes++;
    if (result.examples.length < 20) result.examples.push(why);
  };
  for (let i = 0; i < cases; i++) {
    const frame = fuzzFrame(rng, fuzzMessage(rng));
    let values: unknown[];
    try {
      values = new FrameDecoder().push(frame);
    } catch {
      result.undecodable++;
      continue;
    }
    for (const v of values) {
      for (const check of [checkClientMessage, checkAgentMessage]) {
        try {
          const m = check(v);
          if (typeof m === 'string') result.rejected++;
          else if (typeof m.type !== 'string') crash(`case ${i}: accepted a non-string type`);
          else result.accepted++;
        } catch (err) {
          crash(`case ${i}: ${(err as Error).message}`);
        }
      }
    }
  }
  return result;
}
