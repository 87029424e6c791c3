import { BlockList, isIP } from 'node:net';
import { UsageError } from '../errors.js';

/** The networks loopback addresses live in: this machine only. */
export const LOOPBACK_NETWORKS = ['127.0.0.0/8', '::1/128'];

/**
 * The client networks an agent accepts connections from (`--allow CIDR`).
 * IPv4 networks also match IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`),
 * which is how a client appears to an agent listening on `::`.
 */
export class AllowList {
  private readonly list = new BlockList();

  /** `cidrs` as given, e.g. `10.0.0.0/8`, `192.168.1.7` (= /32), `fd00::/8`, `::1`. */
  constructor(readonly cidrs: readonly string[]) {
    for (const cidr of cidrs) {
      const { address, prefix, family } = parseCidr(cidr);
      this.list.addSubnet(address, prefix, family);
    }
  }

  /** Whether a peer with this address may connect; false for no or a malformed address. */
  allows(address: string | undefined): boolean {
    if (address === undefined) return false;
    const family = isIP(address);
    if (family === 0) return false;
    return this.list.check(address, family === 4 ? 'ipv4' : 'ipv6');
  }

  toString(): string {
    return this.cidrs.join(', ');
  }
}

/** Splits and checks `ADDRESS[/PREFIX]`; the error names `--allow`. */
export function parseCidr(text: string): {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
} {
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(text.trim());
  const address = m?.[1] ?? '';
  const version = isIP(address);
  const max = version === 4 ? 32 : 128;
  const prefix = m?.[2] === undefined ? max : Number(m[2]);
  if (!m || version === 0 || prefix > max) {
    throw new UsageError(
      `--allow must be an IPv4 or IPv6 network such as 10.0.0.0/8, 192.168.1.7 or fd00::/8, got ${JSON.stringify(text)}`,
    );
  }
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}
