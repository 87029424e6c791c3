/**
 * TLS on the agent channel, keyed by the cluster's shared secret (TLS 1.3
 * with an external pre-shared key): nothing to issue, distribute, pin or
 * renew beyond the secret every node and client already holds, and both
 * ends prove the key during the handshake. OpenSSL combines the PSK with
 * an (EC)DHE exchange (psk_dhe_ke), so a secret stolen later does not
 * decrypt traffic recorded earlier.
 */
import { hkdfSync } from 'node:crypto';
import { isIP, type Socket } from 'node:net';
import {
  connect as tlsConnect,
  TLSSocket,
  type ConnectionOptions,
  type TLSSocketOptions,
  type TlsOptions,
} from 'node:tls';

/** The PSK identity both ends use; versioned with the key derivation. */
export const TLS_PSK_IDENTITY = 'mpmake-psk-v1';
/**
 * TLS 1.3 suites whose hash is SHA-256: OpenSSL's PSK callbacks give the
 * key to TLS 1.3 only for those (a SHA-384 suite fails the handshake).
 */
export const TLS_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256';

const TLS_VERSIONS = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as const;

/**
 * The TLS key for `secret`: HKDF-SHA256 with its own label, so the key that
 * encrypts is never the key that signs auth challenges.
 */
export function tlsPsk(secret: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'mpmake', 'mpmake tls psk v1', 32));
}

/**
 * The agent's end: wraps an accepted connection. A client with another key
 * fails the handshake ('error' on the returned socket); nothing is read
 * from it before that.
 */
export function acceptTls(socket: Socket, secret: Buffer): TLSSocket {
  const psk = tlsPsk(secret);
  // TLSSocket takes a server's pskCallback too; @types/node lists it only on tls.Server.
  const options: TLSSocketOptions & Pick<TlsOptions, 'pskCallback'> = {
    isServer: true,
    ...TLS_VERSIONS,
    ciphers: TLS_CIPHERS,
    pskCallback: (_socket, identity) => (identity === TLS_PSK_IDENTITY ? psk : null),
  };
  return new TLSSocket(socket, options);
}

/** Why a TLS dial refused an agent that presented a certificate. */
export const CERTIFICATE_REFUSED =
  'the agent presented a certificate: only the cluster secret (PSK) may authenticate it';

/** The client's end: connects to an agent that runs with `--tls`. */
export function connectTls(host: string, port: number, secret: Buffer): TLSSocket {
  const psk = tlsPsk(secret);
  const options: ConnectionOptions = {
    host,
    port,
    ...TLS_VERSIONS,
    ciphers: TLS_CIPHERS,
    pskCallback: () => ({ psk, identity: TLS_PSK_IDENTITY }),
    // Only the PSK authenticates an agent. Node calls this only when the
    // server presented a certificate instead (one that chains to a trusted
    // CA): refuse it, whoever signed it (F3 of the 2026-12 audit).
    checkServerIdentity: () => new Error(CERTIFICATE_REFUSED),
  };
  return tlsConnect(options);
}

/** Whether `err` came from the TLS layer (a handshake or record failure). */
export function isTlsError(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  return (
    code.startsWith('ERR_SSL_') ||
    code.startsWith('ERR_TLS_') ||
    /\bSSL routines\b/.test(err.message)
  );
}

/**
 * Whether `host` is a loopback address, reachable only from this machine:
 * there TLS is optional; everywhere else it is the default, on both ends.
 */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  switch (isIP(host)) {
    case 4:
      return host.startsWith('127.');
    case 6:
      return host === '::1' || /^::ffff:127\./i.test(host);
    default:
      return false;
  }
}
