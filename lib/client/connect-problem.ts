/**
 * What to tell a user when a connection to an agent fails before the
 * handshake is done: which setting to fix, in words, from what the client
 * saw (connected or not, anything received, the agent's error).
 */

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
