/**
 * Which agents of a host list are distinct nodes, and what to call them.
 *
 * Every agent sends its name (`mpm agent --name`, by default its host name
 * and listen address) and a random instance id drawn when it starts. Two
 * addresses answered by one instance are one node (127.0.0.1:7541 and
 * localhost:7541); two instances with one name (cloned machines with the
 * same host name) are told apart by their address: `vm:7543@10.0.0.3:7543`.
 */

export interface AgentIdentity {
  /** `HOST:PORT` as in the host list. */
  address: string;
  /** The agent's own name. */
  name: string;
  /** Random per agent process. */
  instance: string;
}

/** One address answered by an agent already listed under another. */
export interface SameAgent {
  address: string;
  /** The address it is known by (the first in the host list). */
  sameAs: string;
  /** The node's id. */
  id: string;
}

export interface Identities {
  /** Address -> the id reports use, for every address that is a node of its own. */
  ids: Map<string, string>;
  /** Addresses of an agent already listed. */
  aliases: SameAgent[];
}

/** The id of a node whose name another agent also has. */
export const qualifiedId = (name: string, address: string): string => `${name}@${address}`;

/**
 * Identities in host-list order: the first address of an instance is the
 * node, later ones are its aliases; a name shared by distinct instances
 * is qualified by the address on every one of them.
 */
export function identify(agents: readonly AgentIdentity[]): Identities {
  const first = new Map<string, AgentIdentity>();
  const aliases: Array<{ address: string; sameAs: string }> = [];
  for (const a of agents) {
    const seen = first.get(a.instance);
    if (seen) aliases.push({ address: a.address, sameAs: seen.address });
    else first.set(a.instance, a);
  }
  const named = new Map<string, number>();
  for (const a of first.values()) named.set(a.name, (named.get(a.name) ?? 0) + 1);
  const ids = new Map<string, string>();
  for (const a of first.values()) {
    ids.set(a.address, named.get(a.name)! > 1 ? qualifiedId(a.name, a.address) : a.name);
  }
  return {
    ids,
    aliases: aliases.map((x) => ({ ...x, id: ids.get(x.sameAs)! })),
  };
}

/** The one line that says an address is an agent already listed. */
export function sameAgentLine(a: SameAgent): string {
  return `mpmake: ${a.address} is the agent ${a.id} already reached at ${a.sameAs}; counting it once`;
}
