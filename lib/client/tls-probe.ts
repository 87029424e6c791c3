/**
 * Whether an agent that said nothing to a plain connection runs with
 * `--tls`: a TLS server waits for the client's first bytes, and a plain
 * client waits for the agent's hello, so both would wait out the connect
 * timeout and the client would keep retrying. One TLS handshake keyed by
 * the secret tells them apart; nothing is sent after it.
 */
import { connectTls } from '../protocol/tls.js';

/** True when a TLS handshake with `secret` at host:port completes within `timeoutMs`. */
export function completesTlsHandshake(
  host: string,
  port: number,
  secret: Buffer,
  timeoutMs: number,
): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connectTls(host, port, secret);
    let settled = false;
    const done = (yes: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(yes);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('secureConnect', () => done(true));
    socket.on('error', () => done(false));
    socket.once('close', () => done(false));
  });
}
