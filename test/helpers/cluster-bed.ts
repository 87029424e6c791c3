/**
 * The cluster test bed (issue 11): a file server, a client and N nodes,
 * each a host with its own network, mount, UTS and PID namespaces (see
 * bed/host.ts), joined by a bridge in a switch host, addresses in
 * 198.18.0.0/24. The file server's sshd serves the export directory over
 * sftp; the client and every node mount it with sshfs at the same path
 * (`mountPath`), each with its own FUSE caches, shaped like NFS (see
 * bed/file-server.ts). Agents run on the nodes with a secret; mpmake runs on
 * the client with MPMAKE_HOSTS naming them.
 *
 *   const bed = await startBed(t);            // t.teardown closes it
 *   await bed.startAgents();                  // or { tls, allow, clockOffset } per node
 *   await bed.useAgents([{ tls: true }]);     // one per node; keeps those already so
 *   writeFileSync(join(bed.exportDir, 'x'))   // the server's real directory
 *   await bed.mpmake(['-j9'], { cwd: bed.mountPath });
 *   await bed.client.run('make', ['-q'], { cwd: bed.mountPath });
 *   await bed.cutLink(bed.nodes[0]!); await bed.restoreLink(bed.nodes[0]!);
 *   await bed.mountAlso(join(bed.runDir, 'neg'), { negativeTimeout: 3 });  // other caches
 *
 * Everything it starts is stopped by pid, and the namespaces vanish with
 * their processes, also when this process is killed (the hosts end when
 * our pipe to them closes). The run directory /tmp/mpbed-PID-* of a dead
 * PID is removed by the next run.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { secretFile as writeSecretFile } from './security.js';
import { mpmakeCli } from './paths.js';
import { cleanEnv, runCapture, type RunResult } from './run.js';
import { startAgent, type AgentOptions, type BedAgent } from './bed/agents.js';
import {
  makeSshFiles,
  mountShared,
  startSshd,
  unmountShared,
  type CacheOptions,
  type SshKeys,
} from './bed/file-server.js';
import { fenceCommand } from './bed/fence.js';
import { Host, type HostProcess } from './bed/host.js';
import { attach, createBridge, setLink } from './bed/network.js';

export { bedMissing, faketimeLibrary } from './bed/availability.js';
export type { AgentOptions, BedAgent } from './bed/agents.js';
export type { CacheOptions } from './bed/file-server.js';
export type { Host } from './bed/host.js';

export interface BedOptions extends CacheOptions {
  /** Node hosts; default 3. */
  nodes?: number;
  /** Every node gets the same host name (cloned VMs); default: node0, node1… */
  sameHostname?: boolean;
}

export interface BedMpmakeOptions {
  /** Directory on the client; default the mount path. */
  cwd?: string;
  /** Added to the clean environment (after MPMAKE_HOSTS and MPMAKE_SECRET_FILE). */
  env?: Record<string, string>;
  /** Agents to list; default every running agent. */
  agents?: BedAgent[];
  timeoutMs?: number;
}

export const SERVER_ADDRESS = '198.18.0.1';
export const CLIENT_ADDRESS = '198.18.0.2';
/** Node i is 198.18.0.(11 + i). */
export function nodeAddress(i: number): string {
  return `198.18.0.${11 + i}`;
}

const RUN_DIR_PREFIX = 'mpbed-';

/** Removes run directories left by bed runs whose process is gone. */
function removeStaleRunDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    const m = new RegExp(`^${RUN_DIR_PREFIX}(\\d+)-`).exec(name);
    if (!m) continue;
    try {
      process.kill(Number(m[1]), 0);
      continue; // alive: another run's
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EPERM') continue;
    }
    rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
}

export class Bed {
  /** Every agent started and not stopped, in start order. */
  readonly agents: BedAgent[] = [];
  /** The options each running agent was started with (see useAgents). */
  private readonly agentOptions = new Map<BedAgent, string>();
  private readonly mounts = new Map<Host, HostProcess>();
  private sshd: HostProcess | undefined;
  private keys: SshKeys | undefined;
  /** Second views of the export (mountAlso), unmounted first. */
  private readonly moreMounts: Array<{ host: Host; sshfs: HostProcess; path: string }> = [];
  private closed = false;
  private cache: CacheOptions = {};

  private constructor(
    /** Private run directory (keys, secret, export, mount point). */
    readonly runDir: string,
    /** The file server's real directory: read it for the truth, from this process. */
    readonly exportDir: string,
    /** Where the client and every node see the export (sshfs). */
    readonly mountPath: string,
    /** The cluster's secret (mode 0600). */
    readonly secretFile: string,
    readonly switchHost: Host,
    readonly server: Host,
    readonly client: Host,
    readonly nodes: Host[],
  ) {}

  /** Builds the bed; prefer {@link startBed}, which registers its teardown. */
  static async create(options: BedOptions = {}): Promise<Bed> {
    removeStaleRunDirs();
    const runDir = mkdtempSync(join(tmpdir(), `${RUN_DIR_PREFIX}${process.pid}-`));
    const exportDir = join(runDir, 'export');
    const mountPath = join(runDir, 'tree');
    mkdirSync(exportDir);
    mkdirSync(mountPath);
    const secret = writeSecretFile(runDir, `bed-secret-${Math.random().toString(36).slice(2)}`);
    const hosts: Host[] = [];
    try {
      const start = async (name: string, address: string, hostname = name): Promise<Host> => {
        const h = await Host.start(name, address, hostname);
        hosts.push(h);
        return h;
      };
      const n = options.nodes ?? 3;
      const [sw, server, client, ...nodes] = await Promise.all([
        start('switch', ''),
        start('server', SERVER_ADDRESS),
        start('client', CLIENT_ADDRESS),
        ...Array.from({ length: n }, (_, i) =>
          start(`node${i}`, nodeAddress(i), options.sameHostname ? 'node' : undefined),
        ),
      ]);
      const bed = new Bed(runDir, exportDir, mountPath, secret, sw!, server!, client!, nodes);
      await bed.setUp(options);
      return bed;
    } catch (err) {
      await Promise.all(hosts.map((h) => h.close()));
      rmSync(runDir, { recursive: true, force: true });
      throw err;
    }
  }

  private async setUp(options: CacheOptions): Promise<void> {
    this.cache = { attrTimeout: options.attrTimeout, negativeTimeout: options.negativeTimeout };
    await createBridge(this.switchHost);
    await Promise.all(
      [this.server, this.client, ...this.nodes].map((h) => attach(this.switchHost, h)),
    );
    const keys = makeSshFiles(join(this.runDir, 'ssh'), this.server);
    this.keys = keys;
    this.sshd = await startSshd(this.server, keys);
    await Promise.all(
      [this.client, ...this.nodes].map(async (h) => {
        const m = await mountShared(h, this.server, keys, this.exportDir, this.mountPath, options);
        this.mounts.set(h, m);
      }),
    );
  }

  /**
   * Mounts the export again at `path` on the client and every node, with
   * other cache options (say, negative lookups cached), beside the mount
   * path: tests of other caches share this bed. Unmounted by close().
   */
  async mountAlso(path: string, cache: CacheOptions): Promise<void> {
    mkdirSync(path, { recursive: true });
    await Promise.all(
      [this.client, ...this.nodes].map(async (host) => {
        const sshfs = await mountShared(host, this.server, this.keys!, this.exportDir, path, cache);
        this.moreMounts.push({ host, sshfs, path });
      }),
    );
  }

  /**
   * A command for mpmake's --mp-fence that ends the lost node's sftp
   * sessions at the file server (see bed/fence.ts). A node fenced so has
   * lost its mount: give it back with {@link remount}.
   */
  fenceCommand(): string {
    return fenceCommand(this.runDir, this.keys!, this.server.address);
  }

  /**
   * Mounts the export at the mount path on `host` again (after a fence
   * ended its session), once its old sshfs has noticed, or after `waitMs`.
   * Returns whether the old one had ended by itself.
   */
  async remount(host: Host, waitMs = 10_000): Promise<boolean> {
    const old = this.mounts.get(host)!;
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([
      old.exited.then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), waitMs))),
    ]);
    clearTimeout(timer);
    await unmountShared(host, old, this.mountPath);
    const opts = [this.server, this.keys!, this.exportDir, this.mountPath, this.cache] as const;
    this.mounts.set(host, await mountShared(host, ...opts));
    return ended;
  }

  /** Starts an agent on `node`. */
  async startAgent(node: Host, options: AgentOptions = {}): Promise<BedAgent> {
    const agent = await startAgent(node, this.secretFile, options);
    this.agents.push(agent);
    this.agentOptions.set(agent, optionsKey(options));
    return agent;
  }

  /**
   * One agent on every node, node i's started with `perNode[i]` (default
   * none), in node order. A node whose only agent still runs with those
   * options keeps it; the others are (re)started, all at once. Cases
   * sharing one bed (test/cluster/bed.test.ts) start only what they change.
   */
  async useAgents(perNode: AgentOptions[] = []): Promise<BedAgent[]> {
    return Promise.all(
      this.nodes.map(async (node, i) => {
        const options = perNode[i] ?? {};
        const running = this.agents.filter((a) => a.node === node);
        const [only] = running;
        const same = only?.running() && this.agentOptions.get(only) === optionsKey(options);
        if (running.length === 1 && same) return only!;
        await this.stopAgents(running);
        return this.startAgent(node, options);
      }),
    );
  }

  /** Starts an agent on every node, all with `options`. */
  startAgents(options: AgentOptions = {}): Promise<BedAgent[]> {
    return Promise.all(this.nodes.map((n) => this.startAgent(n, options)));
  }

  /** Stops these agents (default all) by pid. */
  async stopAgents(agents: BedAgent[] = [...this.agents]): Promise<void> {
    await Promise.all(agents.map((a) => a.stop()));
    for (const a of agents) {
      const at = this.agents.indexOf(a);
      if (at >= 0) this.agents.splice(at, 1);
      this.agentOptions.delete(a);
    }
  }

  /** MPMAKE_HOSTS for these agents (default all running). */
  hostsList(agents: BedAgent[] = this.agents): string {
    return agents.map((a) => a.hostSpec).join(' ');
  }

  /**
   * Runs mpmake on the client, in `cwd` (default the mount path), with
   * MPMAKE_HOSTS and MPMAKE_SECRET_FILE set; output on real pipes.
   */
  mpmake(args: string[], options: BedMpmakeOptions = {}): Promise<RunResult> {
    const env = cleanEnv({
      MPMAKE_HOSTS: this.hostsList(options.agents),
      MPMAKE_SECRET_FILE: this.secretFile,
      ...options.env,
    });
    return runCapture(
      'nsenter',
      [
        ...this.client.enterArgs(options.cwd ?? this.mountPath),
        process.execPath,
        mpmakeCli,
        ...args,
      ],
      { cwd: this.runDir, env, timeoutMs: options.timeoutMs ?? 180_000 },
    );
  }

  /** Cuts `host`'s link at the switch (`ip link set … down`). */
  cutLink(host: Host): Promise<void> {
    return setLink(this.switchHost, host, false);
  }

  restoreLink(host: Host): Promise<void> {
    return setLink(this.switchHost, host, true);
  }

  /** Stops agents, unmounts, stops sshd, ends every host, removes the run directory. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const quietly = (p: Promise<unknown>): Promise<unknown> => p.catch(() => {});
    await quietly(this.stopAgents());
    await Promise.all(this.moreMounts.map((m) => quietly(unmountShared(m.host, m.sshfs, m.path))));
    await Promise.all(
      [...this.mounts].map(([h, m]) => quietly(unmountShared(h, m, this.mountPath))),
    );
    if (this.sshd) await quietly(this.sshd.stop());
    await Promise.all(
      [this.client, ...this.nodes, this.server, this.switchHost].map((h) => quietly(h.close())),
    );
    rmSync(this.runDir, { recursive: true, force: true });
  }
}

/** Options as a key: the same options, in any key order, give the same key. */
function optionsKey(options: AgentOptions): string {
  return JSON.stringify(
    Object.entries(options)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => a.localeCompare(b)),
  );
}

/** The part of tap's Test that startBed needs. */
export interface TeardownHost {
  teardown(fn: () => unknown): void;
}

/** Builds a bed that `t`'s teardown closes (also when the test fails). */
export async function startBed(t: TeardownHost, options: BedOptions = {}): Promise<Bed> {
  const bed = await Bed.create(options);
  t.teardown(() => bed.close());
  return bed;
}
