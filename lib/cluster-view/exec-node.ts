import { parseHostList, type HostSpec } from '../client/host-list.js';
import { NodeChannel } from '../client/node-channel.js';
import { ProbeFile } from '../coordinator/probe-file.js';
import { MpmakeError } from '../errors.js';
import { pick, type NodeSnapshot } from '../placement/placement.js';
import type { ClusterViewOptions } from './cluster-options.js';

/** How long to wait for a node's first load report before placing without it. */
const FIRST_LOAD_WAIT_MS = 1000;

/** mpm exec could not run the command (no node, refused, lost). */
export class ExecError extends MpmakeError {}

export interface ExecPlacement {
  /** The node to run on, connected and checked. */
  node: NodeChannel;
  /** Nodes left out, with why (for --verbose). */
  leftOut: { address: string; reason: string }[];
}

/** Whether `node` answers to `name`: its agent id or its HOST:PORT. */
function answersTo(node: NodeChannel, name: string, spec: HostSpec | undefined): boolean {
  return node.nodeId === name || node.address === name || node.address === spec?.address;
}

/** `name` as a host entry, when it is one (`nodeA`, `nodeA:7543`, `[::1]:9`). */
function asHostSpec(name: string): HostSpec | undefined {
  try {
    const [spec] = parseHostList(name, '--on');
    return spec && !spec.local ? spec : undefined;
  } catch {
    return undefined;
  }
}

function waitForLoad(node: NodeChannel): Promise<void> {
  if (node.lastLoad) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      node.off('load', done);
      node.off('state', done);
      resolve();
    };
    const timer = setTimeout(done, FIRST_LOAD_WAIT_MS);
    node.on('load', done);
    node.on('state', done);
  });
}

/**
 * The start check of Cluster.start for one node: it must see `probe`
 * (a file we wrote in the working directory) with our content. Resolves
 * with why not, or undefined when it does.
 */
function checkProbe(
  node: NodeChannel,
  probe: { path: string; content: string } | undefined,
  timeoutMs: number,
): Promise<string | undefined> {
  if (!probe) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const done = (why: string | undefined): void => {
      clearTimeout(timer);
      node.off('probe-result', onResult);
      node.off('state', onState);
      resolve(why);
    };
    const timer = setTimeout(
      () => done(`no answer to the start check within ${timeoutMs} ms`),
      timeoutMs,
    );
    const onResult = (m: { ok: boolean; reason: string }): void =>
      done(m.ok ? undefined : m.reason);
    const onState = (): void => done(node.reason ?? 'connection lost during the start check');
    node.on('probe-result', onResult);
    node.on('state', onState);
    node.send({ type: 'probe', id: 1, path: probe.path, content: probe.content });
  });
}

/**
 * While the start check runs, SIGINT, SIGTERM or SIGHUP first removes the
 * probe file, then ends us by that signal as before. Returns the unhook.
 */
function cleanupOnSignals(cleanup: () => void): () => void {
  const hooks = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((sig) => {
    const hook = (): void => {
      cleanup();
      unhook();
      process.kill(process.pid, sig);
    };
    process.on(sig, hook);
    return [sig, hook] as const;
  });
  const unhook = (): void => {
    for (const [sig, hook] of hooks) process.off(sig, hook);
  };
  return unhook;
}

/**
 * Connects to the candidate nodes and picks where the command runs: the
 * node named by `on` (agent id or HOST:PORT, listed or not), else the
 * lowest-load node that passes the start check in `cwd`. Every other
 * channel is closed. Throws ExecError when no node can take the command.
 */
export async function placeExec(
  options: ClusterViewOptions,
  on: string | undefined,
  cwd: string,
  onChannel: (node: NodeChannel) => void = () => {},
): Promise<ExecPlacement> {
  const named = on === undefined ? undefined : asHostSpec(on);
  let specs = options.hosts;
  /** `on` names a HOST:PORT we connect to alone; else it may be an agent id. */
  let byAddress = false;
  if (on !== undefined) {
    const listed = specs.find((s) => s.address === named?.address);
    if (listed) specs = [listed];
    else if (specs.length === 0 && named) specs = [named];
    byAddress = specs.length === 1 && specs[0]!.address === named?.address;
  }
  if (specs.length === 0) {
    throw new ExecError('MPM_ERR_NO_AGENTS', 'no agents configured');
  }
  const channelFor = (spec: HostSpec): NodeChannel => {
    const node = new NodeChannel(spec, {
      secret: options.secret,
      secretFrom: options.secretFrom,
      client: options.client,
      connectTimeoutMs: options.connectTimeoutMs,
      heartbeatIntervalMs: Math.max(200, Math.floor(options.heartbeatTimeoutMs / 5)),
      heartbeatTimeoutMs: options.heartbeatTimeoutMs,
      reconnect: false,
    });
    onChannel(node);
    return node;
  };
  let nodes = specs.map(channelFor);
  await Promise.all(nodes.map((n) => n.start()));
  if (on !== undefined && !byAddress) {
    // Named by agent id: keep the one that says so.
    const match = nodes.find((n) => n.state === 'ready' && answersTo(n, on, named));
    const ids = nodes.filter((n) => n.state === 'ready').map((n) => n.nodeId);
    const down = nodes.filter((n) => n.state !== 'ready').map((n) => n.address);
    const known =
      `no listed node is called ${on} (ids: ${ids.join(', ') || 'none'}` +
      (down.length ? `; not reachable: ${down.join(', ')})` : ')');
    for (const n of nodes) if (n !== match) n.close();
    if (match) nodes = [match];
    else if (named) {
      // Not in the host list under that name: a node outside the list.
      const outside = channelFor(named);
      await outside.start();
      if (outside.state !== 'ready') {
        const why = outside.reason ?? 'not reachable';
        outside.close();
        throw new ExecError(
          outside.refused ? 'MPM_ERR_AUTH' : 'MPM_ERR_NO_AGENTS',
          `${known}, and ${named.address} cannot be reached: ${why}`,
        );
      }
      nodes = [outside];
    } else throw new ExecError('MPM_ERR_NO_AGENTS', known);
  }

  const leftOut: { address: string; reason: string }[] = [];
  for (const n of nodes) {
    if (n.state !== 'ready')
      leftOut.push({ address: n.address, reason: n.reason ?? 'not reachable' });
  }
  const ready = nodes.filter((n) => n.state === 'ready');
  if (ready.length === 0) {
    const refused = nodes.some((n) => n.refused);
    for (const n of nodes) n.close();
    const why = leftOut.map((l) => `${l.address}: ${l.reason}`).join('; ');
    throw new ExecError(
      refused ? 'MPM_ERR_AUTH' : 'MPM_ERR_NO_AGENTS',
      on !== undefined
        ? `cannot reach ${on}: ${why}`
        : `no agent ${refused ? 'let us in' : 'is reachable'}: ${why}`,
    );
  }

  // The same probe file as mpmake's start check (.mpmake-probe-PID-HEX):
  // there only while the check runs; one left by a killed mpm exec or
  // mpmake goes now.
  const probes = new ProbeFile(cwd);
  const probe = probes.acquire();
  const unhook = cleanupOnSignals(() => probes.close());
  let passed: NodeChannel[];
  try {
    const checks = await Promise.all(
      ready.map(async (n) => {
        const [why] = await Promise.all([
          checkProbe(n, probe, Math.max(options.connectTimeoutMs, 3000)),
          waitForLoad(n),
        ]);
        if (why !== undefined) leftOut.push({ address: n.address, reason: why });
        return why === undefined && n.state === 'ready';
      }),
    );
    passed = ready.filter((_, i) => checks[i]);
  } finally {
    probes.close();
    unhook();
  }
  if (passed.length === 0) {
    for (const n of nodes) n.close();
    const why = leftOut.map((l) => `${l.address}: ${l.reason}`).join('; ');
    throw new ExecError(
      'MPM_ERR_JOB_REFUSED',
      on !== undefined
        ? `${on} cannot run commands in ${cwd}: ${why}`
        : `no node can run commands in ${cwd}: ${why}`,
    );
  }

  const now = Date.now();
  const snapshots: NodeSnapshot[] = passed.map((n) => ({
    id: n.address,
    local: false,
    slots: n.slots,
    running: n.lastLoad?.running ?? 0,
    queued: n.lastLoad?.queued ?? 0,
    inFlight: 0,
    loadavg1: n.lastLoad?.loadavg1 ?? 0,
    cpus: n.lastLoad?.cpus ?? n.cpus,
    reportAgeMs: n.lastLoad ? now - n.lastLoadAtMs : Infinity,
    penalized: false,
  }));
  const choice = pick(snapshots, Math.floor(Math.random() * snapshots.length));
  const node = passed.find((n) => choice.kind === 'node' && n.address === choice.id) ?? passed[0]!;
  for (const n of nodes) if (n !== node) n.close();
  return { node, leftOut };
}
