/**
 * Issue 15's "done when": twelve REAL users building at once on one
 * cluster, each as themselves. As root, the benchmark makes U users (names
 * with a per-run prefix, removed at the end with their homes), gives each
 * a copy of a bundled tree (fixtures/trees/NAME) in a directory it owns,
 * starts a munged with a generated key (stopped by pid at the end) and A
 * loopback agents with `--auth munge` (as root: each build's jobs run as
 * the user its MUNGE credential proves), then starts every user's
 * `mpmake -j` at the same moment, each through `runuser` as that user.
 *
 * It reports, per user: wall time from spawn to exit, mpmake's own wall
 * time, jobs per node, refusals (`jobs.refused` of each --mp-report, nodes
 * left out, failed builds) and files in the tree not owned by the user;
 * then the spread of the wall times, (max − min) / mean and max / min,
 * against the issue's 15 %. Runs untimed once with one user first (warm
 * caches).
 *
 *   node dist/benchmarks/twelve-users-munge.js [--users 12] [--agents 2] [--slots 2]
 *        [--runs 1] [--tree mixed-small] [--connect-timeout 3000] [--heartbeat-timeout 5000]
 *   node dist/benchmarks/twelve-users-munge.js --replot   (the table again from the JSON)
 *
 * Needs root, useradd/userdel/runuser, MUNGE (munged, munge, unmunge) and
 * build/mpmake-exec. Writes results/twelve-users-munge.{json,md}.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { LocalAgent } from '../lib/agent/spawn-agent.js';
import { spawnLocalAgent } from '../lib/agent/spawn-agent.js';
import { MUNGED, startMunged, type Munged } from '../fixtures/munged.js';
import { runuserArgs } from '../test/helpers/users.js';
import {
  benchEnv,
  fmt,
  hostList,
  isMain,
  machine,
  markdownTable,
  mpmakeCli,
  nowMs,
  numberOptions,
  publishResults,
  repoRoot,
  resultsDir,
  stopAgents,
  takeFlag,
  verdict,
  type Machine,
  type Report,
} from './common.js';

export interface TwelveUsersMungeOptions {
  users: number;
  agents: number;
  slots: number;
  runs: number;
  /** A directory under fixtures/trees. */
  tree: string;
  /**
   * mpmake's --mp-connect-timeout, its default (3000) unless given. Until
   * 2026-12-02 07:00 this benchmark needed 20 s: at 3000 ms it left agents
   * out (8-13 nodes) and 2 of 12 builds failed MPM_ERR_NO_AGENTS, every
   * retry timed out alike in the storm of twelve mpmake starts. Since a
   * dial that failed gets twice the time on the next (node-channel.ts
   * dialTimeoutMs) and MUNGE starts no process, the default holds: 12 of 12
   * built, 0 left out (07:35, load 2-7).
   */
  connectTimeoutMs: number;
  /**
   * mpmake's --mp-heartbeat-timeout (its default is 5000): on the shared
   * 2-core machine at load 20-28 a starved client or agent missed 5 s of
   * heartbeats, its jobs' leases lapsed and builds failed.
   */
  heartbeatTimeoutMs: number;
}

export const TWELVE_USERS_MUNGE_DEFAULTS: TwelveUsersMungeOptions = {
  users: 12,
  agents: 2,
  slots: 2,
  runs: 1,
  tree: 'mixed-small',
  connectTimeoutMs: 3000,
  heartbeatTimeoutMs: 5000,
};

export const TWELVE_USERS_MUNGE_TARGETS = {
  /** (slowest − fastest) / mean of the users' wall times, per round. */
  spread: 0.15,
  /** Refused jobs, nodes left out and failed builds, all rounds. */
  refusals: 0,
  /** Files in a user's tree owned by someone else, all rounds. */
  foreignFiles: 0,
};

/** Marks the users this benchmark makes; only those are ever removed. */
const COMMENT = 'mpmake benchmark user';

interface BenchUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  tree: string;
  report: string;
}

interface UserRun {
  user: string;
  wallMs: number;
  /** mpmake's own wall time (its --mp-report): without runuser and Node's start. */
  mpmakeWallMs: number | null;
  code: number | null;
  refused: number;
  leftOut: number;
  /** Jobs run again because their node was lost or their lease lapsed (the report's reruns). */
  reruns: number;
  mode: string | null;
  jobsPerNode: Record<string, number>;
  localJobs: number;
  files: number;
  foreignFiles: string[];
  stderrTail: string;
}

interface Round {
  users: UserRun[];
  meanMs: number;
  minMs: number;
  maxMs: number;
  /** (max − min) / mean. */
  spread: number;
  /** The same of mpmake's own times (without runuser and Node's start); null when one is missing. */
  ownSpread: number | null;
  /** max / min. */
  ratio: number;
}

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** (max − min) / mean. */
function spreadOf(ms: number[]): number {
  return (Math.max(...ms) - Math.min(...ms)) / (ms.reduce((a, b) => a + b, 0) / ms.length);
}

/** Builds of a round that ended well, on the cluster. */
const builtIn = (g: Round): number =>
  g.users.filter((u) => u.code === 0 && u.mode === 'cluster').length;

/** Why this benchmark cannot run here, or undefined. */
function cannotRun(): string | undefined {
  if (process.geteuid?.() !== 0) return 'needs root (it makes users and runs root agents)';
  for (const cmd of ['useradd', 'userdel', 'runuser', 'munge', 'unmunge']) {
    if (!has(cmd)) return `needs ${cmd} (apt install munge passwd util-linux)`;
  }
  if (!existsSync(MUNGED) && !has('munged')) return 'needs munged (apt install munge)';
  if (!existsSync(join(repoRoot, 'build', 'mpmake-exec'))) {
    return 'needs build/mpmake-exec (run `make build`)';
  }
  return undefined;
}

/** Removes a user this benchmark made (checked by its comment), with its home. */
function removeUser(name: string): void {
  const entry = spawnSync('getent', ['passwd', name]).stdout?.toString() ?? '';
  if (entry.includes(COMMENT)) spawnSync('userdel', ['-r', '-f', name], { stdio: 'ignore' });
}

function makeUser(name: string, treeSource: string): BenchUser {
  execFileSync('useradd', ['-m', '-c', COMMENT, '-s', '/bin/sh', name], { stdio: 'ignore' });
  const u = Number(execFileSync('id', ['-u', name]).toString().trim());
  const g = Number(execFileSync('id', ['-g', name]).toString().trim());
  const home = `/home/${name}`;
  chmodSync(home, 0o700);
  const tree = join(home, 'tree');
  cpSync(treeSource, tree, { recursive: true });
  execFileSync('chown', ['-R', `${u}:${g}`, tree]);
  return { name, uid: u, gid: g, home, tree, report: join(home, 'report.json') };
}

/** Every entry under `dir` (itself included) and those not owned by uid:gid. */
function ownership(dir: string, uid: number, gid: number): { files: number; foreign: string[] } {
  let files = 0;
  const foreign: string[] = [];
  const walk = (path: string): void => {
    const st = lstatSync(path);
    files++;
    if (st.uid !== uid || st.gid !== gid) foreign.push(`${path} (${st.uid}:${st.gid})`);
    if (st.isDirectory()) for (const name of readdirSync(path)) walk(join(path, name));
  };
  walk(dir);
  return { files, foreign };
}

interface Waiting {
  /** Resolves once its shell waits for the word to go. */
  ready: Promise<void>;
  /** Starts mpmake; resolves when it ends, with the time from go to exit. */
  go(): Promise<{ wallMs: number; code: number | null; stderr: string }>;
}

/**
 * `mpmake -j` as `user` in its tree, through runuser with a clean
 * environment; its shell says `ready` and waits for a line on stdin before
 * it execs mpmake, so every user starts at one moment however long
 * runuser took to get there.
 */
function buildAs(user: BenchUser, env: Record<string, string>): Waiting {
  const child = spawn(
    'runuser',
    runuserArgs(
      user.name,
      {
        HOME: user.home,
        USER: user.name,
        LOGNAME: user.name,
        PATH: '/usr/local/bin:/usr/bin:/bin',
        LC_ALL: 'C',
        ...env,
      },
      [
        'sh',
        '-c',
        'echo ready; read go; exec "$@" </dev/null >/dev/null',
        'sh',
        process.execPath,
        mpmakeCli,
        '--mp-quiet',
        '--mp-no-fallback',
        `--mp-report=${user.report}`,
        '-j',
      ],
    ),
    { cwd: user.tree, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const closed = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code));
  });
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    void closed.then(() => reject(new Error(`${user.name}'s shell ended early: ${stderr}`)));
  });
  return {
    ready,
    go: async () => {
      const startMs = nowMs();
      child.stdin!.end('go\n');
      const code = await closed;
      return { wallMs: nowMs() - startMs, code, stderr };
    },
  };
}

const ownSpread = (g: Round): string =>
  g.ownSpread === null || g.ownSpread === undefined ? '—' : `${fmt(g.ownSpread * 100, 1)} %`;

type UserReport = Report & { mode?: string; leftOut?: unknown[]; reruns?: unknown[] };

function readJson(path: string): UserReport | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as UserReport;
  } catch {
    return undefined;
  }
}

async function round(users: BenchUser[], env: Record<string, string>): Promise<Round> {
  for (const u of users) {
    execFileSync('runuser', ['-u', u.name, '--', 'make', '-s', 'clean'], {
      cwd: u.tree,
      stdio: 'ignore',
    });
    rmSync(u.report, { force: true });
  }
  const waiting = users.map((u) => buildAs(u, env));
  await Promise.all(waiting.map((w) => w.ready));
  // Every user presses Enter at the same moment.
  const finished = await Promise.all(waiting.map((w) => w.go()));
  const runs = finished.map((f, i): UserRun => {
    const u = users[i]!;
    const report = readJson(u.report);
    const own = ownership(u.tree, u.uid, u.gid);
    return {
      user: u.name,
      wallMs: f.wallMs,
      mpmakeWallMs: report?.wallMs ?? null,
      code: f.code,
      refused: report?.jobs.refused ?? 0,
      leftOut: report?.leftOut?.length ?? 0,
      reruns: report?.reruns?.length ?? 0,
      mode: report?.mode ?? null,
      jobsPerNode: Object.fromEntries((report?.nodes ?? []).map((n) => [n.id, n.jobs])),
      localJobs: report?.jobs.local ?? 0,
      files: own.files,
      foreignFiles: own.foreign,
      stderrTail: f.stderr.trim().slice(-400),
    };
  });
  const walls = runs.map((r) => r.wallMs);
  const meanMs = walls.reduce((a, b) => a + b, 0) / walls.length;
  const minMs = Math.min(...walls);
  const maxMs = Math.max(...walls);
  const own = runs.map((r) => r.mpmakeWallMs);
  return {
    users: runs,
    meanMs,
    minMs,
    maxMs,
    spread: (maxMs - minMs) / meanMs,
    ownSpread: own.every((ms) => ms !== null) ? spreadOf(own as number[]) : null,
    ratio: maxMs / minMs,
  };
}

export async function runTwelveUsersMunge(options: TwelveUsersMungeOptions): Promise<unknown> {
  const why = cannotRun();
  if (why) throw new Error(`twelve-users-munge ${why}`);
  const treeSource = join(repoRoot, 'fixtures', 'trees', options.tree);
  if (!existsSync(join(treeSource, 'Makefile'))) {
    throw new Error(`--tree ${options.tree}: no Makefile in ${treeSource}`);
  }
  const loadBefore = loadavg();
  const prefix = `mpb${randomBytes(2).toString('hex')}u`;
  const names = Array.from(
    { length: options.users },
    (_, i) => `${prefix}${String(i).padStart(2, '0')}`,
  );
  const made: string[] = [];
  let agents: LocalAgent[] = [];
  let munged: Munged | undefined;
  const cleanup = (): void => {
    for (const name of made) removeUser(name);
  };
  const onSignal = (): void => {
    cleanup();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const users: BenchUser[] = [];
    for (const name of names) {
      made.push(name);
      users.push(makeUser(name, treeSource));
    }
    munged = await startMunged();
    const agentEnv = { ...benchEnv() };
    delete agentEnv['MPMAKE_SECRET_FILE'];
    const started = await Promise.allSettled(
      Array.from({ length: options.agents }, (_, i) =>
        spawnLocalAgent({
          slots: options.slots,
          id: `munge-${i}`,
          // MUNGE is the authentication: no shared secret.
          secretFile: false,
          extraArgs: ['--auth', 'munge', '--munge-socket', munged!.socket],
          env: agentEnv,
        }),
      ),
    );
    agents = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason as Error;
    const env = {
      MPMAKE_AUTH: 'munge',
      MPMAKE_MUNGE_SOCKET: munged.socket,
      MPMAKE_HOSTS: hostList(agents),
      MPMAKE_NO_LEARN: '1',
      MPMAKE_CONNECT_TIMEOUT: String(options.connectTimeoutMs),
      MPMAKE_HEARTBEAT_TIMEOUT: String(options.heartbeatTimeoutMs),
    };

    // Untimed: one user, once (caches, the agents' JIT).
    const warm = await round(users.slice(0, 1), env);
    if (warm.users[0]!.code !== 0) {
      throw new Error(`the warm-up build failed: ${warm.users[0]!.stderrTail}`);
    }
    const rounds: Round[] = [];
    for (let r = 0; r < options.runs; r++) {
      const g = await round(users, env);
      rounds.push(g);
      const built = builtIn(g);
      process.stderr.write(
        `twelve-users-munge: round ${r + 1}/${options.runs}: ${built} of ${g.users.length} built` +
          `${built < g.users.length ? ' (the spread means little: failed builds end early)' : ''}; ` +
          `mean ${fmt(g.meanMs / 1000)} s, min ${fmt(g.minMs / 1000)}, max ${fmt(g.maxMs / 1000)}, ` +
          `spread ${fmt(g.spread * 100, 1)} % (of mpmake's own times ${ownSpread(g)}); ` +
          `${g.users.reduce((n, u) => n + u.reruns, 0)} jobs run again\n`,
      );
    }
    const all = rounds.flatMap((g) => g.users);
    const refusals = all.reduce(
      (s, u) => s + u.refused + u.leftOut + (u.code === 0 && u.mode === 'cluster' ? 0 : 1),
      0,
    );
    const foreign = all.reduce((s, u) => s + u.foreignFiles.length, 0);
    const worstSpread = Math.max(...rounds.map((g) => g.spread));
    const checks = {
      worstSpread,
      spreadOk: worstSpread <= TWELVE_USERS_MUNGE_TARGETS.spread,
      refusals,
      refusalsOk: refusals <= TWELVE_USERS_MUNGE_TARGETS.refusals,
      foreignFiles: foreign,
      ownershipOk: foreign <= TWELVE_USERS_MUNGE_TARGETS.foreignFiles,
    };
    const json: TwelveUsersMungeResult = {
      benchmark: 'twelve-users-munge',
      date: new Date().toISOString(),
      machine: machine(),
      loadavgBefore: loadBefore.map((l) => Math.round(l * 100) / 100),
      loadavgAfter: loadavg().map((l) => Math.round(l * 100) / 100),
      options,
      targets: TWELVE_USERS_MUNGE_TARGETS,
      checks,
      rounds,
    };
    await publishResults('twelve-users-munge', json, markdown(json));
    return json;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await stopAgents(agents);
    await munged?.stop();
    cleanup();
  }
}

export interface TwelveUsersMungeResult {
  benchmark: 'twelve-users-munge';
  date: string;
  machine: Machine;
  loadavgBefore: number[];
  loadavgAfter: number[];
  options: TwelveUsersMungeOptions;
  targets: typeof TWELVE_USERS_MUNGE_TARGETS;
  checks: {
    worstSpread: number;
    spreadOk: boolean;
    refusals: number;
    refusalsOk: boolean;
    foreignFiles: number;
    ownershipOk: boolean;
  };
  rounds: Round[];
}

export function markdown(json: TwelveUsersMungeResult): string {
  const { options: o, checks, rounds } = json;
  const m = json.machine;
  const s = (ms: number | null): string => (ms === null ? '-' : fmt(ms / 1000));
  const last = rounds[rounds.length - 1]!;
  const rows = last.users.map((u, i) => [
    `user ${String(i).padStart(2, '0')}`,
    s(u.wallMs),
    s(u.mpmakeWallMs),
    Object.entries(u.jobsPerNode)
      .map(([id, n]) => `${id} ${n}`)
      .join(', ') || '-',
    u.localJobs,
    u.reruns ?? '-',
    u.refused + u.leftOut,
    u.code === null ? 'signal' : u.code,
    `${u.files - u.foreignFiles.length}/${u.files}`,
  ]);
  const la = (l: number[]): string => l.map((x) => fmt(x)).join(' / ');
  const failures = rounds.flatMap((g, r) =>
    g.users.flatMap((u, i) =>
      u.code === 0
        ? []
        : [
            `- round ${r + 1}, user ${String(i).padStart(2, '0')}: ${u.stderrTail.split('\n').join(' ')}`,
          ],
    ),
  );
  // Builds that went on without a node: why it was left out (mpmake's line).
  const leftOut = rounds.flatMap((g, r) =>
    g.users.flatMap((u, i) =>
      u.code === 0 && u.leftOut > 0
        ? u.stderrTail
            .split('\n')
            .filter((l) => l.startsWith('mpmake: leaving out'))
            .map((l) => `- round ${r + 1}, user ${String(i).padStart(2, '0')}: ${l}`)
        : [],
    ),
  );
  return (
    `# twelve-users-munge: ${o.users} real users at once, each as themselves (MUNGE)\n\n` +
    `${o.users} users made for the run (removed after), each with its own copy of ` +
    `fixtures/trees/${o.tree} in a 0700 home, start \`mpmake -j --mp-no-fallback\` (through ` +
    `runuser) at the same moment against ${o.agents} root loopback agents × ${o.slots} slots ` +
    `with \`--auth munge\` (a munged of the run's own, generated key), ` +
    `\`--mp-connect-timeout=${o.connectTimeoutMs}\` (mpmake's default is 3000), ` +
    `\`--mp-heartbeat-timeout=${o.heartbeatTimeoutMs ?? 5000}\` (mpmake's default is 5000). ` +
    `Spread = (slowest − fastest) / mean of the users' wall times. Wall time from ` +
    `the moment every user's shell was told to start to mpmake's exit (Node's start included); ` +
    `mpmake's own from its --mp-report. ` +
    `${rounds.length} round(s) after a one-user warm-up; the table is the last round. ` +
    `Machine: ${m.cpus} CPUs (${m.cpuModel}), ${m.make}, Node ${m.node}, commit ${m.commit}; ` +
    `load average (1/5/15 min) ${la(json.loadavgBefore)} before, ${la(json.loadavgAfter)} ` +
    `after: a shared machine, other people's builds and tests ran meanwhile.\n\n` +
    markdownTable(
      [
        'user',
        'wall s',
        'mpmake s',
        'jobs per node',
        'jobs on client',
        'run again',
        'refusals',
        'exit',
        'files owned by the user',
      ],
      rows,
    ) +
    `\nPer round: ` +
    rounds
      .map(
        (g, i) =>
          `${i + 1}: ${builtIn(g)} of ${g.users.length} built, mean ${s(g.meanMs)} s, fastest ${s(g.minMs)}, slowest ${s(g.maxMs)}, ` +
          `spread (max − min) / mean ${fmt(g.spread * 100, 1)} % (of mpmake's own times ${ownSpread(g)}), max / min ${fmt(g.ratio)}`,
      )
      .join('; ') +
    `.\n\nTargets (issue 15): spread within ${TWELVE_USERS_MUNGE_TARGETS.spread * 100} % ` +
    `(worst round ${fmt(checks.worstSpread * 100, 1)} %, ${verdict(checks.spreadOk)}); ` +
    `no refusal: refused jobs + nodes left out + failed or non-cluster builds ` +
    `(${checks.refusals}, ${verdict(checks.refusalsOk)}); every file in each tree owned by its ` +
    `user (${checks.foreignFiles} not, ${verdict(checks.ownershipOk)}).\n` +
    (leftOut.length > 0
      ? `\nNodes left out of builds that went on:\n\n${leftOut.join('\n')}\n`
      : '') +
    (failures.length > 0
      ? `\nFailed builds (their times are those of failing, not of building: the spread means ` +
        `nothing while any failed):\n\n${failures.join('\n')}\n`
      : '')
  );
}

if (isMain(import.meta.url)) {
  try {
    const argv = process.argv.slice(2);
    if (takeFlag(argv, 'replot')) {
      const path = join(resultsDir, 'twelve-users-munge.json');
      const json = JSON.parse(readFileSync(path, 'utf8')) as TwelveUsersMungeResult;
      await publishResults('twelve-users-munge', json, markdown(json));
      process.exit(0);
    }
    let tree = TWELVE_USERS_MUNGE_DEFAULTS.tree;
    const at = argv.findIndex((a) => a === '--tree' || a.startsWith('--tree='));
    if (at >= 0) {
      const a = argv[at]!;
      const value = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[at + 1];
      argv.splice(at, a.includes('=') ? 1 : 2);
      if (!value || !/^[\w.-]+$/.test(value))
        throw new Error('--tree takes a name under fixtures/trees');
      tree = value;
    }
    const o = numberOptions(argv, [
      'users',
      'agents',
      'slots',
      'runs',
      'connect-timeout',
      'heartbeat-timeout',
    ]);
    const d = TWELVE_USERS_MUNGE_DEFAULTS;
    await runTwelveUsersMunge({
      users: o['users'] ?? d.users,
      agents: o['agents'] ?? d.agents,
      slots: o['slots'] ?? d.slots,
      runs: o['runs'] ?? d.runs,
      tree,
      connectTimeoutMs: o['connect-timeout'] ?? d.connectTimeoutMs,
      heartbeatTimeoutMs: o['heartbeat-timeout'] ?? d.heartbeatTimeoutMs,
    });
  } catch (err) {
    process.stderr.write(`twelve-users-munge: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
