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
 */
import { execFile } from 'node:child_process';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { HandshakeBinding } from './auth.js';

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
 * munge or unmunge failed. `local`: the local munged could not be asked
 * (not running, wrong socket, the programs missing); otherwise it judged
 * the credential (invalid, expired, replayed, another key), in `message`.
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

/** What munge's exit codes (munge_err_t) say about a credential. */
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

/** munge_err_t EMUNGE_SOCKET: munged not reached (its socket busy under load: EAGAIN), nothing decoded. */
const SOCKET_ERROR = 6;
/** munged there but busy (its socket's backlog full), or a connection it dropped. */
const BUSY = /temporarily unavailable|EAGAIN|busy|Input\/output error|reset by peer/i;
/** Tries of one munge/unmunge when munged was busy (or munge's answer was empty), and the pause between. */
const TRIES = 4;
const RETRY_MS = 200;
/** A credential as munge writes it: "MUNGE:" base64 ":" (nothing else, nothing empty). */
const CREDENTIAL = /^MUNGE:[A-Za-z0-9+/=]+:$/;

interface RunFailure {
  error: MungeError;
  /** munged was not reached: the same request again is safe (nothing was decoded). */
  transient: boolean;
}

function runOnce(
  cmd: string,
  args: string[],
  input: string | Buffer,
  socket: string,
): Promise<string | RunFailure> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      [...args, '--socket', socket],
      { timeout: TIMEOUT_MS, maxBuffer: 64 * 1024, env: { PATH: process.env['PATH'] ?? '' } },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const { code, killed, signal } = err as {
          code?: unknown;
          killed?: boolean;
          signal?: unknown;
        };
        const why =
          stderr
            .trim()
            .replace(/^\S+: (Error: )?/, '')
            .split('\n')[0] || (typeof signal === 'string' ? `ended by ${signal}` : err.message);
        const fail = (message: string, local: boolean, transient = false): void =>
          resolve({ error: new MungeError(message, local), transient });
        if (code === 'ENOENT') {
          fail(`${cmd} not found (Debian: apt install munge)`, true);
        } else if (killed === true || (typeof code === 'number' && LOCAL_ERRORS.has(code))) {
          fail(
            `cannot reach munged at ${socket}: ${killed === true ? 'no answer' : why}`,
            true,
            code === SOCKET_ERROR && BUSY.test(stderr),
          );
        } else if (typeof code !== 'number') {
          // Ended by a signal, not by munge's own judgement.
          fail(`${cmd} did not finish: ${why}`, true);
        } else {
          fail(CREDENTIAL_ERRORS[code] ?? `${cmd}: ${why}`, false);
        }
      },
    );
    child.stdin?.on('error', () => {});
    child.stdin?.end(input);
  });
}

/**
 * Runs munge or unmunge; munged busy (EMUNGE_SOCKET: its socket's backlog
 * full under load, EAGAIN) is retried briefly, as is an answer `accept`
 * rejects when `retryBadAnswer` (munge: asking again is harmless). Never
 * resolves to an answer `accept` rejects: that is a MungeError.
 */
async function run(
  cmd: string,
  args: string[],
  input: string | Buffer,
  socket: string,
  accept: (out: string) => boolean,
  retryBadAnswer: boolean,
): Promise<string> {
  let last: MungeError | undefined;
  for (let i = 0; i < TRIES; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, RETRY_MS * i));
    const out = await runOnce(cmd, args, input, socket);
    if (typeof out === 'string') {
      if (accept(out)) return out;
      last = new MungeError(
        out.trim() === ''
          ? `${cmd} at ${socket} succeeded but wrote nothing (munged overloaded?)`
          : `${cmd} at ${socket} gave an unexpected answer`,
        true,
      );
      if (!retryBadAnswer) break;
    } else {
      last = out.error;
      if (!out.transient) break;
    }
  }
  throw last!;
}

/** A credential from the local munged for `payload` (this process's uid and gid); never empty. */
export async function mungeEncode(payload: Buffer, socket = DEFAULT_MUNGE_SOCKET): Promise<string> {
  const ok = (out: string): boolean => CREDENTIAL.test(out.trim());
  return (await run('munge', [], payload, socket, ok, true)).trim();
}

/** Decodes `credential` with the local munged; throws MungeError when it is not valid. */
export async function mungeDecode(
  credential: string,
  socket = DEFAULT_MUNGE_SOCKET,
): Promise<MungeIdentity> {
  // A second unmunge of a credential munged did decode would be a "replay": not retried.
  const args = ['--numeric', '--keys', 'STATUS,UID,GID'];
  const out = await run('unmunge', args, credential, socket, (o) => o.includes('\n\n'), false);
  const blank = out.indexOf('\n\n');
  const meta = new Map<string, string>();
  for (const line of out.slice(0, blank).split('\n')) {
    const m = /^([A-Z_]+):\s*(.*)$/.exec(line);
    if (m) meta.set(m[1]!, m[2]!.trim());
  }
  const uid = Number(meta.get('UID'));
  const gid = Number(meta.get('GID'));
  if (
    !/^0\b/.test(meta.get('STATUS') ?? '') ||
    !Number.isSafeInteger(uid) ||
    !Number.isSafeInteger(gid)
  ) {
    throw new MungeError(`unmunge at ${socket} gave an unexpected answer`, true);
  }
  return { uid, gid, payload: Buffer.from(out.slice(blank + 2), 'utf8') };
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
