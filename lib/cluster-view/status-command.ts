import { resolveClusterOptions, type RawClusterOptions } from './cluster-options.js';
import type { ClusterViewOptions } from './cluster-options.js';
import { onePerNode, type NodeStatus } from './node-status.js';
import { StatusConnection } from './status-connection.js';
import { statusText } from './status-table.js';

export interface RawStatusOptions extends RawClusterOptions {
  json?: boolean | undefined;
}

/**
 * Asks every agent once, in parallel; one entry per agent, in list order
 * (an agent listed under two addresses is one entry, see onePerNode).
 */
export async function queryCluster(options: ClusterViewOptions): Promise<NodeStatus[]> {
  const connections = options.hosts.map(
    (spec) =>
      new StatusConnection(spec, {
        secret: options.secret,
        client: options.client,
        timeoutMs: options.connectTimeoutMs,
      }),
  );
  try {
    const nodes = await Promise.all(connections.map((c) => c.query()));
    return onePerNode(nodes, options.client.build);
  } finally {
    for (const c of connections) c.close();
  }
}

/**
 * `mpm status`: one table of the cluster (or, with --json, an array of
 * node objects) on stdout. Resolves 0 when at least one node is up, else 1.
 */
export async function runStatusCommand(
  raw: RawStatusOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const options = await resolveClusterOptions(raw, env);
  const nodes = await queryCluster(options);
  const text = raw.json ? `${JSON.stringify(nodes, null, 2)}\n` : statusText(nodes);
  await new Promise<void>((resolve) => process.stdout.write(text, () => resolve()));
  return nodes.some((n) => n.state === 'up') ? 0 : 1;
}
