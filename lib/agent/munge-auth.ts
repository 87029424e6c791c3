/**
 * The agent's side of `--auth munge`: who a client is, from its MUNGE
 * credential, and the agent's own credential for the welcome.
 */
import type { HandshakeBinding } from '../protocol/auth.js';
import {
  agentPayload,
  clientPayload,
  mungeDecode,
  mungeEncode,
  MungeError,
} from '../protocol/munge.js';
import type { MungeMode } from './agent-options.js';
import { runBounded } from './bounded-exec.js';
import type { RunAs } from './run-as.js';

/** One `getent` (NSS: LDAP too); its output, or a rejection when it found nothing or failed. */
async function getent(args: string[]): Promise<string> {
  const r = await runBounded('getent', args, {
    timeoutMs: 5000,
    env: { LC_ALL: 'C', PATH: '/usr/bin:/bin' },
  });
  if (r.code !== 0) throw new Error(`getent ${args.join(' ')}: ${r.signal ?? `exit ${r.code}`}`);
  return r.stdout.toString();
}

/** A client that proved its uid: whom its jobs run as. */
export interface MungeClient {
  /** The user's name, from this node's user database. */
  user: string;
  uid: number;
  /** undefined: jobs run as the agent itself (it runs as that very user). */
  runAs: RunAs | undefined;
  /** The agent's own credential for the welcome (mutual authentication). */
  credential: string;
}

/** A refusal: the error code and message for the client, and a line for the log. */
export interface MungeRefusal {
  code: 'MPM_ERR_MUNGE_CRED' | 'MPM_ERR_UID_REFUSED' | 'MPM_ERR_MUNGE';
  refused: string;
  log: string;
}

export type MungeOutcome = MungeClient | MungeRefusal;

const USER_CACHE_MS = 60_000;
const users = new Map<number, { at: number; name: Promise<string> }>();

/**
 * The user name of `uid` in this node's user database (NSS: LDAP too), by
 * one `getent passwd`, cached for a minute; rejects when there is none.
 * (The launcher's initgroups finds the groups.)
 */
function userOf(uid: number): Promise<string> {
  const hit = users.get(uid);
  if (hit && Date.now() - hit.at < USER_CACHE_MS) return hit.name;
  const name = getent(['passwd', String(uid)]).then((stdout) => {
    const fields = stdout.split('\n')[0]!.split(':');
    if (fields.length < 7 || fields[0] === '' || Number(fields[2]) !== uid) {
      throw new Error(`no user with uid ${uid}`);
    }
    return fields[0]!;
  });
  users.set(uid, { at: Date.now(), name });
  name.catch(() => users.delete(uid));
  return name;
}

export interface MungePolicy {
  munge: MungeMode;
  allowRoot: boolean;
  /** The agent's effective uid: not root, it takes only its own. */
  euid: number;
}

/**
 * Checks a client's MUNGE credential: decoded by this node's munged (so
 * made with the cluster's key, not expired, never decoded before), bound to
 * this handshake, and for a uid this agent accepts: at least --min-uid,
 * root only with --allow-root, only its own uid when the agent is not
 * root, and a user this node knows. Jobs then run as that uid, with the
 * credential's gid and the user's groups (initgroups).
 */
export async function authenticateMunge(
  policy: MungePolicy,
  credential: string,
  binding: HandshakeBinding,
  /** channelBinding(socket): the TLS session, or empty. */
  channel: Uint8Array,
): Promise<MungeOutcome> {
  const { socket, minUid } = policy.munge;
  let uid: number;
  let gid: number;
  try {
    const decoded = await mungeDecode(credential, socket);
    ({ uid, gid } = decoded);
    if (!decoded.payload.equals(clientPayload(binding, channel))) {
      return {
        code: 'MPM_ERR_MUNGE_CRED',
        refused:
          'authentication failed: the MUNGE credential was not made for this connection ' +
          '(relayed, replayed from another one, or through a man in the middle)',
        log: `MUNGE credential of uid ${uid} not bound to this connection (relayed or replayed)`,
      };
    }
  } catch (err) {
    const why = err instanceof MungeError ? err.message : String(err);
    if (err instanceof MungeError && err.local) {
      return {
        code: 'MPM_ERR_MUNGE',
        refused: `the agent cannot check MUNGE credentials: ${why} (the agent's --munge-socket)`,
        log: `MUNGE: ${why}`,
      };
    }
    return {
      code: 'MPM_ERR_MUNGE_CRED',
      refused: `authentication failed: ${why}`,
      log: `MUNGE: ${why}`,
    };
  }
  const refuse = (why: string): MungeOutcome => ({
    code: 'MPM_ERR_UID_REFUSED',
    refused: `uid ${uid} refused: ${why}`,
    log: `uid ${uid} refused: ${why}`,
  });
  if (uid === 0 && !policy.allowRoot) {
    return refuse('this agent does not run jobs as root (it runs without --allow-root)');
  }
  if (uid !== 0 && uid < minUid) return refuse(`it is below this agent's --min-uid ${minUid}`);
  if (policy.euid !== 0 && uid !== policy.euid) {
    return refuse(`this agent runs as uid ${policy.euid}, not root: it runs jobs only as itself`);
  }
  let name: string;
  try {
    name = await userOf(uid);
  } catch {
    return refuse('no such user on this node (the user databases differ?)');
  }
  const runAs: RunAs | undefined =
    uid === policy.euid ? undefined : { name, uid, gid, groups: [], initgroups: true };
  let mine: string;
  try {
    mine = await mungeEncode(agentPayload(binding, channel), socket);
  } catch (err) {
    return {
      code: 'MPM_ERR_MUNGE',
      refused: `the agent cannot get a MUNGE credential of its own: ${(err as Error).message}`,
      log: `MUNGE: ${(err as Error).message}`,
    };
  }
  return { user: name, uid, runAs, credential: mine };
}
