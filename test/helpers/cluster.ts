/**
 * A loopback cluster for tests: real `mpm agent` children on 127.0.0.1,
 * stopped by t.teardown.
 */
import { spawnLocalAgent, type LocalAgent } from '../../lib/agent/spawn-agent.js';
import { cleanEnv } from './run.js';

export interface Cluster {
  agents: LocalAgent[];
  /** For --mp-hosts / MPMAKE_HOSTS: "127.0.0.1:P1/S 127.0.0.1:P2/S". */
  hosts: string;
}

/** The part of tap's Test that startCluster needs. */
export interface TeardownHost {
  teardown(fn: () => unknown): void;
}

export async function startCluster(t: TeardownHost, n: number, slots: number): Promise<Cluster> {
  const agents: LocalAgent[] = [];
  t.teardown(() => Promise.all(agents.map((a) => a.stop().catch(() => {}))));
  for (let i = 0; i < n; i++) {
    agents.push(await spawnLocalAgent({ slots, id: `test-agent-${i}`, env: cleanEnv() }));
  }
  return { agents, hosts: agents.map((a) => a.hostSpec).join(' ') };
}
