import { HostListError } from '../errors.js';

export const DEFAULT_AGENT_PORT = 7543;

/** One entry of the host list: an agent, or the client's own slots. */
export interface HostSpec {
  /** `host:port` as written (normalised), or `local` for the client machine. */
  address: string;
  host: string;
  port: number;
  /** Slots to use there; undefined = what the agent reports. */
  slots: number | undefined;
  /** True for a `localhost/N` entry without a port: the client's own slots. */
  local: boolean;
  /** A secret for this node only (the embedded local agent's). */
  secret?: Buffer;
  /** Connect with TLS (the agent runs with `--tls`); set on every agent by `--mp-tls`. */
  tls?: boolean;
}

/**
 * Parses a host list such as `"nodeA:7543/8 nodeB/4, [::1]:9000"`.
 * Entries are separated by whitespace or commas; each is `HOST[:PORT][/SLOTS]`.
 * `localhost/N` without a port names the client machine's own slots.
 */
export function parseHostList(text: string, source: string): HostSpec[] {
  const entries = text.split(/[\s,]+/).filter(Boolean);
  const out: HostSpec[] = [];
  const seen = new Set<string>();
  for (const entry of entries) {
    const spec = parseEntry(entry, source);
    if (seen.has(spec.address)) {
      throw new HostListError(`${source}: host ${spec.address} is listed twice`);
    }
    seen.add(spec.address);
    out.push(spec);
  }
  return out;
}

function parseEntry(entry: string, source: string): HostSpec {
  const bad = (why: string): never => {
    throw new HostListError(
      `${source}: cannot parse host entry "${entry}": ${why} (expected HOST[:PORT][/SLOTS], e.g. "nodeA:7543/8")`,
    );
  };
  let rest = entry;
  let slots: number | undefined;
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    const s = rest.slice(slash + 1);
    if (!/^[1-9][0-9]{0,4}$/.test(s)) bad(`slots "${s}" is not a positive integer`);
    slots = Number(s);
    rest = rest.slice(0, slash);
  }
  let host: string;
  let portText: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) bad('unclosed "["');
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) bad('junk after "]"');
      portText = after.slice(1);
    }
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon >= 0) {
      host = rest.slice(0, colon);
      portText = rest.slice(colon + 1);
    } else host = rest;
  }
  if (!/^[A-Za-z0-9._:-]+$/.test(host)) bad(`host "${host}" is not a host name or address`);
  if (portText === undefined && host === 'localhost' && slots !== undefined) {
    return { address: 'local', host: 'localhost', port: 0, slots, local: true };
  }
  let port = DEFAULT_AGENT_PORT;
  if (portText !== undefined) {
    if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      bad(`port "${portText}" is not a number from 1 to 65535`);
    }
    port = Number(portText);
  }
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return { address, host, port, slots, local: false };
}
