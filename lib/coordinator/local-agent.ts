import { randomBytes } from 'node:crypto';
import { AgentServer } from '../agent/agent-server.js';
import { packageVersion } from '../agent/package-root.js';
import { DEFAULT_MAX_HANDSHAKES } from '../agent/pending-connections.js';
import { closeSharedSpawner } from '../agent/spawn-client.js';
import { tracer } from '../trace.js';
import type { HostSpec } from '../client/host-list.js';

const trace = tracer('coordinator');

/**
 * The client machine as a node: a `localhost/N` host entry starts an agent
 * inside mpmake itself, on a loopback port, with a secret of its own (other
 * users of this machine can reach loopback too). Its jobs then go through
 * the same placement, routing, flow control and accounting as any node's,
 * and placement sees their real load.
 */
export async function startLocalAgent(
  spec: HostSpec,
): Promise<{ spec: HostSpec; close(): Promise<void> }> {
  const secret = randomBytes(32);
  const server = await AgentServer.start(
    {
      host: '127.0.0.1',
      port: 0,
      slots: spec.slots ?? 1,
      id: 'local',
      secret,
      roots: ['/'],
      maxQueuedPerClient: 1 << 20,
      // Only this build's own client: its waiting jobs are bounded by make's -j.
      maxQueuedBytesPerClient: Number.MAX_SAFE_INTEGER,
      maxQueuedBytes: Number.MAX_SAFE_INTEGER,
      maxHandshakes: DEFAULT_MAX_HANDSHAKES,
    },
    (line) => trace(`local agent: ${line}`),
    packageVersion(),
  );
  const port = Number(server.address.slice(server.address.lastIndexOf(':') + 1));
  return {
    spec: {
      address: server.address,
      host: '127.0.0.1',
      port,
      slots: spec.slots,
      local: false,
      secret,
    },
    close: async () => {
      await server.close();
      closeSharedSpawner();
    },
  };
}
