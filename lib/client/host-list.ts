import { isIPv4, isIPv6 } from 'node:net';
import { availableParallelism } from 'node:os';
import { HostListError } from '../errors.js';

export const DEFAULT_AGENT_PORT = 7543;

/**
 * isIPv6, asked only of text with two colons or more: Node's IPv6 pattern
 * takes ~60 ms of CPU on each of its first calls (as on "10.0.0.1:7543").
 */
const ipv6 = (s: string): boolean => s.indexOf(':') !== s.lastIndexOf(':') && isIPv6(s);

/** One entry of the host list: an agent, or the client's own slots. */
export interface HostSpec {
  /** `host:port` as written (normalised), or `local` for the client machine. */
  address: string;
  host: string;
  port: number;
  /** Slots to use there; undefined = what the agent reports. */
  slots: number | undefined;
  /** True for a `localhost` or `localhost/N` entry without a port: the client's own slots. */
  local: boolean;
  /** A secret for this node only (the embedded local agent's). */
  secret?: Buffer;
  /** Connect with TLS (the agent runs with `--tls`); set on every agent by `--mp-tls`. */
  tls?: boolean;
  /** Prove our uid with a MUNGE credential (agents with `--auth munge`); set by `--mp-auth=munge`. */
  munge?: MungeClientMode;
}

/** `--mp-auth=munge`: where our munged listens, and where that setting came from. */
export interface MungeClientMode {
  socket: string;
  /** The flag, variable or config key that chose MUNGE, to name in errors. */
  from: string;
  /** The one that named the socket, if any (else munge's default). */
  socketFrom?: string | undefined;
}

/** distcc host options that have no meaning here: accepted, with a note. */
const DISTCC_OPTIONS = new Set(['lzo', 'cpp']);
/** distcc list-wide options accepted with a note. */
const DISTCC_FLAGS = new Set(['--randomize']);

const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;
const EXPECTED =
  'write HOST[:PORT][/SLOTS], e.g. "nodeA:7543/8", "[fd00::1]:7543" or "localhost/4"';

/**
 * Parses a host list such as `"nodeA:7543/8 nodeB/4, [::1]:9000"`.
 * Entries are separated by whitespace or commas; each is `HOST[:PORT][/SLOTS]`.
 * `localhost` and `localhost/N` without a port name the client machine's
 * own slots (all its CPUs, or N). distcc's DISTCC_HOSTS forms are read where
 * they mean something here: `,lzo` and `,cpp` after an entry and
 * `--randomize` are accepted and ignored (one note each in `notes`);
 * ssh entries (`@host`, `user@host`) are refused.
 */
export function parseHostList(text: string, source: string, notes: string[] = []): HostSpec[] {
  const out: HostSpec[] = [];
  const seen = new Set<string>();
  const noted = new Set<string>();
  const note = (what: string, why: string): void => {
    if (noted.has(what)) return;
    noted.add(what);
    notes.push(
      `${source}: "${what}" is a distcc option that does not apply here (${why}); ignored`,
    );
  };
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (word.startsWith('--')) {
      if (!DISTCC_FLAGS.has(word)) {
        throw new HostListError(
          `${source}: unknown option "${word}" in the host list (only distcc's --randomize is accepted); ${EXPECTED}`,
        );
      }
      note(word, 'mpmake places every job on the least-loaded node');
      continue;
    }
    // Commas separate entries, except before a distcc option (`host/4,lzo`).
    let entry: string | undefined;
    const flush = (): void => {
      if (entry === undefined) return;
      const spec = parseEntry(entry, source);
      if (seen.has(spec.address)) {
        throw new HostListError(
          `${source}: host ${spec.local ? 'localhost (this machine)' : spec.address} is listed twice; list each once`,
        );
      }
      seen.add(spec.address);
      out.push(spec);
      entry = undefined;
    };
    for (const part of word.split(',')) {
      if (part === '') continue;
      if (DISTCC_OPTIONS.has(part) && entry !== undefined) {
        note(
          `,${part}`,
          part === 'lzo' ? 'jobs are not compressed' : 'there is no preprocessing step to send',
        );
        continue;
      }
      flush();
      entry = part;
    }
    flush();
  }
  return out;
}

function parseEntry(entry: string, source: string): HostSpec {
  const bad = (why: string): never => {
    throw new HostListError(`${source}: cannot read host entry "${entry}": ${why}; ${EXPECTED}`);
  };
  if (entry.includes('@')) {
    bad(
      "distcc's ssh form (@HOST) is not supported: run `mpm agent` on that host and list it as HOST:PORT",
    );
  }
  let rest = entry;
  let slots: number | undefined;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const s = rest.slice(slash + 1);
    if (!/^[1-9][0-9]{0,4}$/.test(s)) bad(`slots "${s}" is not a whole number from 1 to 99999`);
    slots = Number(s);
    rest = rest.slice(0, slash);
  }
  let host: string;
  let portText: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) bad('"[" without its "]"');
    host = rest.slice(1, close);
    if (!ipv6(host)) bad(`"${host}" in brackets is not an IPv6 address`);
    const after = rest.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) bad(`"${after}" after "]" (expected ":PORT")`);
      portText = after.slice(1);
    }
  } else if (ipv6(rest)) {
    host = rest;
  } else {
    const parts = rest.split(':');
    if (parts.length > 2)
      bad(`more than one ":" (an IPv6 address with a port goes in brackets: [::1]:7543)`);
    host = parts[0]!;
    portText = parts[1];
  }
  if (host === '') bad('no host name');
  if (!isIPv4(host) && !ipv6(host) && !HOST_NAME.test(host)) {
    bad(`"${host}" is not a host name or IP address`);
  }
  if (portText === undefined && host === 'localhost') {
    return {
      address: 'local',
      host: 'localhost',
      port: 0,
      slots: slots ?? availableParallelism(),
      local: true,
    };
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
