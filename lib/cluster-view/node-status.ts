import { identify } from '../coordinator/node-identity.js';
import type { StatusClient, StatusJob, StatusUser } from '../protocol/messages.js';

/**
 * How a node looked at one moment: `up` (answered), `down` (no connection
 * or no answer), `refused` (it answered but would not let us in: wrong or
 * missing secret, another protocol version).
 */
export type NodeState = 'up' | 'down' | 'refused';

/** One node of `mpm status` / `mpm top`; the fields of `--json`. */
export interface NodeStatus {
  /** `HOST:PORT` as in the host list. */
  address: string;
  /**
   * The agent's name (`--name`), qualified by the address when another
   * agent has the same name; null until it answered.
   */
  nodeId: string | null;
  /** Random per agent process; one instance under two addresses is one node. */
  instance: string | null;
  /** Other addresses of the host list that reached this same agent. */
  alsoAt?: string[];
  hostname: string | null;
  state: NodeState;
  /** Why it is down or refused; null when up. */
  reason: string | null;
  agentVersion: string | null;
  slots: number | null;
  running: number | null;
  queued: number | null;
  /** 1-minute load average. */
  loadavg1: number | null;
  cpus: number | null;
  freeMemBytes: number | null;
  /** Agent clock minus ours, ms (round-trip corrected). */
  clockSkewMs: number | null;
  /** Other clients connected there (not this one); null when unknown. */
  clients: StatusClient[] | null;
  /** Users with jobs there (running and queued summed over their builds); null when unknown. */
  users: StatusUser[] | null;
  /** Jobs there, running first; null when unknown. */
  jobs: StatusJob[] | null;
  /** Jobs the agent did not list (its reply is capped). */
  jobsLeftOut: number;
}

/** A node about which nothing is known yet. */
export function unknownNode(address: string, state: NodeState, reason: string | null): NodeStatus {
  return {
    address,
    nodeId: null,
    instance: null,
    hostname: null,
    state,
    reason,
    agentVersion: null,
    slots: null,
    running: null,
    queued: null,
    loadavg1: null,
    cpus: null,
    freeMemBytes: null,
    clockSkewMs: null,
    clients: null,
    users: null,
    jobs: null,
    jobsLeftOut: 0,
  };
}

/**
 * One entry per agent: an address that reached an agent already listed is
 * folded into its entry (`alsoAt`), and names shared by distinct agents
 * are qualified by the address. `ownBuild` is this view's own client id:
 * its other connection to a folded agent is not a client to show.
 */
export function onePerNode(nodes: readonly NodeStatus[], ownBuild: string): NodeStatus[] {
  const known = nodes.filter((n) => n.instance !== null && n.nodeId !== null);
  const { ids, aliases } = identify(
    known.map((n) => ({ address: n.address, name: n.nodeId!, instance: n.instance! })),
  );
  const folded = new Set(aliases.map((a) => a.address));
  const out: NodeStatus[] = [];
  for (const n of nodes) {
    if (folded.has(n.address)) continue;
    const alsoAt = aliases.filter((a) => a.sameAs === n.address).map((a) => a.address);
    const entry: NodeStatus = { ...n, nodeId: ids.get(n.address) ?? n.nodeId };
    if (alsoAt.length > 0) {
      entry.alsoAt = alsoAt;
      if (entry.clients) entry.clients = entry.clients.filter((c) => c.build !== ownBuild);
    }
    out.push(entry);
  }
  return out;
}
