import type { StatusClient, StatusJob } from '../protocol/messages.js';

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
  /** The agent's id (`--id`, default HOSTNAME:PORT); null until it answered. */
  nodeId: string | null;
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
    jobs: null,
    jobsLeftOut: 0,
  };
}
