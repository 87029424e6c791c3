/**
 * What to tell a user when a connection to an agent fails before the
 * handshake is done: which setting to fix, in words, from what the client
 * saw (connected or not, anything received, the agent's error).
 */
import { getSystemErrorMap } from 'node:util';
import { CERTIFICATE_REFUSED } from '../protocol/tls.js';

/** The four bytes of a frame length, when they are printable text (`HTTP`). */
export function lengthAsText(length: number): string | undefined {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(length >>> 0);
  const text = b.toString('latin1');
  return /^[\x20-\x7e]{4}$/.test(text) ? text : undefined;
}

/** The peer sent bytes that are not an agent's first frame. */
export function notAnAgent(firstBytes: string | undefined): string {
  const said =
    firstBytes === undefined
      ? ''
      : ` (it answered "${firstBytes}…"${firstBytes === 'HTTP' ? ', an HTTP server' : ''})`;
  return `not an mpmake agent${said}: check the port in the host list (agents listen on 7543 by default) [MPM_ERR_NOT_AGENT]`;
}

/** No agent hello within the connect timeout. */
export function noAnswer(timeoutMs: number, connected: boolean, tls: boolean): string {
  if (!connected) {
    return `no connection within ${timeoutMs} ms: the host is down or a firewall drops the port; check the host list, or raise --mp-connect-timeout`;
  }
  if (tls)
    return `connected, but no TLS answer within ${timeoutMs} ms: is an mpmake agent listening there?`;
  return `connected, but no agent hello within ${timeoutMs} ms: not an mpmake agent, or one started with --tls (then use --mp-tls)`;
}

/**
 * No hello on a plain connection, and a TLS handshake keyed by our secret
 * succeeds there: the agent runs with --tls (lib/client/tls-probe.ts).
 */
export function speaksTls(timeoutMs: number): string {
  return (
    `connected, but no agent hello within ${timeoutMs} ms, and a TLS handshake with our secret ` +
    'succeeds there: the agent runs with --tls; reach it over TLS (mpmake --mp-tls, mpm --tls, ' +
    'MPMAKE_TLS=1 or config key "tls") [MPM_ERR_TLS]'
  );
}

/** The agent closed the connection before its hello, without a word. */
export const CLOSED_BEFORE_HELLO =
  "the agent closed the connection before its hello: this machine's address is not in its --allow list (the agent's log says so)";

/** The agent refused our proof of the secret. */
export function secretRefused(secretFrom: string | undefined): string {
  const where = secretFrom ? ` (from ${secretFrom})` : '';
  return `the agent refused our secret${where}: it holds another one; give the cluster's secret file in ${secretFrom ?? '--mp-secret-file, MPMAKE_SECRET_FILE or config key "secretFile"'} [MPM_ERR_AUTH]`;
}

/**
 * The TLS handshake failed (`err`: what TLS said, if anything). An agent
 * that answered in plaintext does not run with --tls; anything else is
 * another secret or TLS on one side only. OpenSSL's own text (its error
 * queue, file and line) is no help to a user and is left out.
 */
export function tlsFailed(err: Error | undefined): string {
  if (err?.message === CERTIFICATE_REFUSED) {
    return `TLS handshake failed (${CERTIFICATE_REFUSED}): whatever answers there is not an agent of this cluster [MPM_ERR_TLS]`;
  }
  if ((err as NodeJS.ErrnoException | undefined)?.code === 'ERR_SSL_WRONG_VERSION_NUMBER') {
    return 'TLS handshake failed: the agent answered in plaintext, so it does not run with --tls; run it with --tls, or reach it without --mp-tls [MPM_ERR_TLS]';
  }
  return 'TLS handshake failed: the agent has another secret, or does not run with --tls [MPM_ERR_TLS]';
}

/**
 * Why a connection to an agent ended, in words, from the socket's error:
 * what happened and, where it helps, what to check; never Node's
 * `read ECONNRESET` or an errno in parentheses.
 */
export function socketProblem(err: Error | undefined, authed: boolean): string {
  if (!err) return authed ? 'connection closed by the agent' : 'closed during handshake';
  const e = err as NodeJS.ErrnoException;
  switch (e.code) {
    case 'ECONNREFUSED':
      return 'connection refused (is `mpm agent` running there?)';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable: no route to it from this machine; check the address in the host list and the network';
    case 'ENOTFOUND':
    case 'EAI_NONAME':
      return 'host name not found';
    case 'EAI_AGAIN':
      return 'host name not found: the name server did not answer; try again, or list the address';
    case 'ETIMEDOUT':
      return 'connection timed out: the host is down or a firewall drops the port';
    case 'ECONNRESET':
      return authed
        ? 'connection reset: the agent or its machine went away'
        : 'connection reset during the handshake';
    case 'EPIPE':
      return 'connection closed by the agent';
  }
  // Another system error: its description, not Node's `SYSCALL CODE` text.
  const known = typeof e.errno === 'number' ? getSystemErrorMap().get(e.errno) : undefined;
  if (known !== undefined && e.syscall !== undefined) return `connection failed: ${known[1]}`;
  return err.message;
}
