/**
 * MUNGE credentials (https://dun.github.io/munge/), as Slurm uses them: a
 * process asks its node's `munged` for a credential that carries its uid
 * and gid and a payload; whoever holds the cluster's MUNGE key decodes it
 * with its own `munged` and learns that uid without trusting the sender.
 * munged refuses to decode a credential twice and after its time to live.
 *
 * The payloads cover the handshake's binding (auth.ts: both ends' nonces,
 * the agent's name and the endpoint the client dialled), under a label per
 * direction: a credential is worth nothing on another connection, to
 * another agent, or the other way round. Over TLS they also cover the TLS
 * session's exported keying material (RFC 5705), so even someone holding
 * the cluster secret (the TLS key) who sits in the middle gets nothing the
 * agent takes: his two TLS sessions export different keys.
 *
 * munged is asked over its socket (munged-socket.ts), not through the
 * `munge` and `unmunge` programs: no process starts per handshake.
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { HandshakeBinding } from './auth.js';
import {
  decodeRequest,
  encodeRequest,
  MungedNoAnswer,
  MungedUnreachable,
} from './munged-socket.js';

/** Longest credential text accepted on the wire (a real one is ~200 characters). */
export const MAX_CREDENTIAL_CHARS = 4096;
/** munge's own socket, where `--munge-socket` / MPMAKE_MUNGE_SOCKET is not given. */
export const DEFAULT_MUNGE_SOCKET = '/run/munge/munge.socket.2';
const CLIENT_LABEL = 'mpmake-munge-client-v2';
const AGENT_LABEL = 'mpmake-munge-agent-v2';
const TIMEOUT_MS = 5000;

/** What a decoded credential says. */
export interface MungeIdentity {
  uid: number;
  gid: number;
  payload: Buffer;
}

/**
 * A MUNGE request failed. `local`: the local munged could not be asked
 * (not running, wrong socket, no answer); otherwise it judged the
 * credential (invalid, expired, replayed, another key), in `message`.
 */
export class MungeError extends Error {
  constructor(
    message: string,
    readonly local: boolean,
  ) {
    super(message);
    this.name = 'MungeError';
  }
}

/** What munged's verdicts (munge_err_t) say about a credential. */
const CREDENTIAL_ERRORS: Record<number, string> = {
  8: 'not a valid MUNGE credential (forged or damaged)',
  11: 'not a valid MUNGE credential (its MAC does not check: forged, or another MUNGE key)',
  13: 'not a valid MUNGE credential (another realm)',
  14: 'not a valid MUNGE credential (forged, or another MUNGE key)',
  15: 'the MUNGE credential has expired (clocks apart by more than its 5 minutes?)',
  16: 'the MUNGE credential was made in the future (the clocks are apart)',
  17: 'the MUNGE credential was replayed (it was used before)',
  18: 'the MUNGE credential is not for this uid',
};
/** munge_err_t: munged not reached (EMUNGE_SOCKET), or too slow (EMUNGE_TIMEOUT). */
const LOCAL_ERRORS = new Set([6, 7]);
/** Tries of one request while munged is busy (its socket's backlog full), and the pause between. */
const TRIES = 5;
const RETRY_MS = 50;
/** A credential as munged makes it: "MUNGE:" base64 ":" (nothing else, nothing empty). */
const CREDENTIAL = /^MUNGE:[A-Za-z0-9+/=]+:$/;

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * One request to munged (munged-socket.ts), asked again while munged is
 * busy (never reached: nothing was done), and with `again` also when it
 * gave no answer (for an encode: asking again is harmless; never for a
 * decode, which munged may have done: a second one would be a replay).
 * Failures are MungeErrors, all `local` (munged could not be asked).
 */
async function ask<T>(request: () => Promise<T>, again: boolean): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await request();
    } catch (err) {
      const retry =
        (err instanceof MungedUnreachable && err.busy) || (again && err instanceof MungedNoAnswer);
      if (!retry || i >= TRIES) throw new MungeError((err as Error).message, true);
    }
    await pause(RETRY_MS * i);
  }
}

/** A MungeError for munged's verdict `status` (munge_err_t), in munged's words where we have none. */
function judged(status: number, error: string, socket: string): MungeError {
  if (LOCAL_ERRORS.has(status)) return new MungeError(`munged at ${socket}: ${error}`, true);
  return new MungeError(
    CREDENTIAL_ERRORS[status] ?? `munged: ${error || `error ${status}`}`,
    false,
  );
}

/** A credential from the local munged for `payload` (this process's uid and gid); never empty. */
export async function mungeEncode(payload: Buffer, socket = DEFAULT_MUNGE_SOCKET): Promise<string> {
  const answer = await ask(() => encodeRequest(socket, payload, TIMEOUT_MS), true);
  if (answer.status !== 0) {
    throw new MungeError(`munged at ${socket} made no credential: ${answer.error}`, true);
  }
  if (!CREDENTIAL.test(answer.credential)) {
    throw new MungeError(`munged at ${socket} gave an unexpected answer`, true);
  }
  return answer.credential;
}

/** Decodes `credential` with the local munged; throws MungeError when it is not valid. */
export async function mungeDecode(
  credential: string,
  socket = DEFAULT_MUNGE_SOCKET,
): Promise<MungeIdentity> {
  if (credential.includes('\0') || credential.length > MAX_CREDENTIAL_CHARS) {
    throw new MungeError(CREDENTIAL_ERRORS[8]!, false);
  }
  const answer = await ask(() => decodeRequest(socket, credential, TIMEOUT_MS), false);
  if (answer.status !== 0) throw judged(answer.status, answer.error, socket);
  const { uid, gid, payload } = answer;
  return { uid, gid, payload };
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/**
 * The TLS session's exported keying material (the same at both ends of one
 * TLS session); empty in plaintext.
 */
export function channelBinding(socket: Socket): Uint8Array {
  return socket instanceof TLSSocket
    ? socket.exportKeyingMaterial(32, 'EXPORTER-mpmake-munge', Buffer.alloc(0))
    : new Uint8Array(0);
}

function payload(label: string, b: HandshakeBinding, channel: Uint8Array): Buffer {
  // JSON: no field can run into the next.
  const fields = [label, hex(b.challenge), hex(b.nonce), b.nodeId, b.endpoint, hex(channel)];
  return Buffer.from(JSON.stringify(fields));
}

/** What the client's credential carries: this handshake's binding and TLS session. */
export function clientPayload(binding: HandshakeBinding, channel: Uint8Array): Buffer {
  return payload(CLIENT_LABEL, binding, channel);
}

/** What the agent's credential in its welcome carries: the same, under its own label. */
export function agentPayload(binding: HandshakeBinding, channel: Uint8Array): Buffer {
  return payload(AGENT_LABEL, binding, channel);
}
