import { closeSync, existsSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { NoAgentsError, UsageError } from '../errors.js';
import { TokenAudit } from '../jobserver/token-audit.js';
import { CommandTimes } from '../placement/command-times.js';
import { historyFile, readHistory, writeHistory } from '../report/build-history.js';
import { dryRunTotal } from './dry-run-total.js';
import { attachObservers } from '../report/observers.js';
import { readSecretFile } from '../protocol/secret-file.js';
import { installShim, nativeShimPath, preloadPath } from '../shim/install-shim.js';
import { tracer } from '../trace.js';
import { heldBackLine, writeReportQuietly, summaryLine, type BuildReport } from './build-report.js';
import { Cluster } from './cluster.js';
import { nodeWaitBoundMs } from './node-wait.js';
import { envFilter } from './env-filter.js';
import { intendedShell, makefileArgs } from './intended-shell.js';
import { findOuterBuild, typedCommand, type BuildLink } from './make-command.js';
import { makeFacts, runMake, type MakeResult } from './make-process.js';
import { isDryRun, splitMakeArgs, type JobsRequest } from './make-args.js';
import { setupMakePool, type JobserverStyle, type MakePool } from './make-pool.js';
import { checkOptionValues } from './option-checks.js';
import { MPMAKE_HELP, noHostsProblem, parseArgs, type MpmakeOptions } from './options.js';
import { RecipeRouter } from './recipe-router.js';
import { makeRunDir } from './run-dir.js';
import { ShellResolver } from './shell-resolver.js';
import { ShimServer } from './shim-server.js';
import { WriteLog } from './write-log.js';
import type { JobEndEvent } from './build-events.js';
import { fsReport } from '../report/fs-lag.js';

const trace = tracer('coordinator');
const VERSION = '0.1.0';
const AUDIT_INTERVAL_MS = 500;
/**
 * Each recipe's prerequisites, as make exports them to it (like
 * MPMAKE_TARGET=$@): the router sends a job the ones another machine wrote
 * in this build, so its node waits until it sees them as written.
 */
const MPMAKE_PREREQS = 'MPMAKE_PREREQS=$^ $|';

export interface MpmakeResult extends MakeResult {
  report?: BuildReport;
}

const say = (line: string): void => {
  process.stderr.write(line.endsWith('\n') ? line : line + '\n');
};

/**
 * `mpmake ARGS`: connect to the cluster, check it, and run GNU make with
 * the shim as its SHELL and a jobserver sized to the cluster, so every
 * recipe line runs on the lowest-load node. Resolves to make's exit status
 * (or signal); throws UsageError/NoAgentsError before make starts.
 */
export async function runMpmake(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<MpmakeResult> {
  const started = Date.now();
  const { options, makeArgv } = parseArgs(argv, env);
  if (options.help) {
    process.stdout.write(MPMAKE_HELP);
    return { code: 0, signal: null };
  }
  if (options.version) {
    process.stdout.write(`mpmake ${VERSION}\n`);
    return { code: 0, signal: null };
  }
  checkOptionValues(options, env);
  // Read as the agents read it (same trimming, same permission check).
  const secret =
    options.secretFile === undefined
      ? undefined
      : await readSecretFile(options.secretFile, options.from['secret-file']);
  for (const note of options.notes) say(`mpmake: ${note}`);
  const { args, jobs } = splitMakeArgs(makeArgv);
  const where = makefileArgs(args, process.cwd());

  if (options.jobserverStyle === 'fifo') {
    const v = makeFacts(options.make, env).version;
    if (!v || v[0] < 4 || (v[0] === 4 && v[1] < 4)) {
      throw new UsageError(
        `${options.from['jobserver-style']}: the fifo style needs GNU make 4.4 or later, and ${options.make} is ${v ? v.join('.') : 'not a GNU make that says its version'}; use the pipe style`,
      );
    }
  }
  // A job on a node (the agent gave it MPMAKE_NODE) has no outer build
  // there: an agent started under a build must not lead its jobs' mpmake
  // back to that build's coordinator.
  const onNode = env['MPMAKE_NODE'] !== undefined;
  const outerSock = env['MPMAKE_SOCK'];
  if (outerSock && !onNode && existsSync(outerSock)) {
    return nestedMake(options, args, jobs, env, { sock: outerSock });
  }
  const outer = !onNode ? findOuterBuild() : undefined;
  if (outer) return nestedMake(options, args, jobs, env, { sock: outer['__MPMAKE_SOCK']!, outer });

  if (options.hosts.length === 0) {
    const { why, fix } = noHostsProblem(options);
    if (options.noFallback) {
      throw new NoAgentsError(`${why}, and ${options.from['no-fallback']} is set: ${fix}`);
    }
    say(`mpmake: warning: ${why}, so no agent is used: running plain make; ${fix}`);
    return localMake(options, makeArgv, env, started, 'local');
  }

  // localhost/N: the client's own slots, served by an agent inside mpmake.
  // Loaded only when asked for: it brings the whole agent with it.
  const localSpecs = options.hosts.filter((h) => h.local);
  const { startLocalAgent } = localSpecs.length
    ? await import('./local-agent.js')
    : { startLocalAgent: undefined };
  const localAgents = startLocalAgent ? await Promise.all(localSpecs.map(startLocalAgent)) : [];
  const closeLocal = localAgents.slice();
  const localAddresses = localAgents.map((a) => a.spec.address);
  const hosts = options.hosts.map((h) => (h.local ? localAgents.shift()!.spec : h));
  const cluster = new Cluster(hosts, {
    secret,
    secretFrom: options.from['secret-file'],
    client: {
      user: userInfo().username,
      host: hostname(),
      pid: process.pid,
      build: randomBytes(6).toString('hex'),
    },
    connectTimeoutMs: options.connectTimeoutMs,
    heartbeatIntervalMs: Math.max(200, Math.floor(options.heartbeatTimeoutMs / 5)),
    heartbeatTimeoutMs: options.heartbeatTimeoutMs,
    reconnect: true,
    maxClockSkewMs: options.maxClockSkewMs,
    placement: options.placement,
    explain: options.explain ? say : undefined,
    checkTimeoutMs: Math.max(options.connectTimeoutMs, 3000),
    fence: options.fence,
    // A job whose node was lost waits for one as a new line does (node-wait.ts).
    nodeWaitMs: options.noFallback ? nodeWaitBoundMs(options.connectTimeoutMs) : 0,
  });
  try {
    await cluster.start(where.cwd);
    for (const l of cluster.leftOut) say(`mpmake: leaving out ${l.address}: ${l.reason}`);
    // Under --mp-no-fallback, agents still connecting (or retrying) are waited for, line by line.
    const mayCome = options.noFallback && cluster.coming.length > 0;
    if (cluster.readyNodes.length === 0 && !mayCome) {
      cluster.close();
      if (options.noFallback) {
        throw new NoAgentsError(
          'no agent is usable (see the lines above) and --mp-no-fallback is set',
        );
      }
      say('mpmake: no agent is usable; building locally with plain make');
      return await localMake(options, makeArgv, env, started, 'local-fallback', cluster);
    }
    const inProcess = new Set(localAddresses);
    return await clusterMake(options, args, jobs, where, env, cluster, started, inProcess);
  } finally {
    await Promise.all(closeLocal.map((a) => a.close()));
  }
}

/**
 * mpmake run by a recipe of an mpmake build: it reuses the outer build's
 * coordinator (its shim and socket) and jobserver, so there is one set of
 * connections and one pool; it is just make with the outer shim as SHELL.
 */
async function nestedMake(
  options: MpmakeOptions,
  args: string[],
  jobs: JobsRequest,
  env: NodeJS.ProcessEnv,
  { sock, outer }: { sock: string; outer?: BuildLink },
): Promise<MpmakeResult> {
  trace(`nested under the coordinator at ${sock}`);
  const runDir = makeRunDir();
  try {
    // The jobserver is make's affair here: MAKEFLAGS, -j and the parent's
    // fds reach make as they came, and make warns and decides as it would.
    const pool = setupMakePool({
      env,
      jobs,
      runDir: runDir.path,
      clusterSlots: 1,
      style: 'pipe',
      nested: true,
      makeReadsFifo: readsFifo(options.make, env),
      makeName: makeNameOf(options),
    });
    const makeArgs = [...pool.makeArgs, ...args];
    const preload = outer?.['__MPMAKE_PRELOAD'];
    if (outer && preload) {
      // The outer build's link, __MPMAKE_TEXTUAL included (a property of make).
      const makeEnv = linkedMakeEnv(withMakeflags(env, pool), { ...outer }, preload);
      const { done } = runMake(options.make, makeArgs, makeEnv, pool.fds, typedCommand());
      for (const fd of pool.handedFds) closeQuietly(fd);
      return await done;
    }
    const makeEnv = withMakeflags(env, pool);
    const shim = join(dirname(sock), 'sh');
    const { done } = runMake(
      options.make,
      [...makeArgs, `SHELL=${shim}`, 'MPMAKE_TARGET=$@', MPMAKE_PREREQS],
      makeEnv,
      pool.fds,
    );
    for (const fd of pool.handedFds) closeQuietly(fd);
    return await done;
  } finally {
    runDir.remove();
  }
}

/** make's name in its messages: the command typed, as make takes it from argv[0]. */
function makeNameOf(options: MpmakeOptions): string {
  return basename(typedCommand() ?? options.make);
}

/** The `--jobserver-style` given to make (make 4.4 checks it when it starts a pool). */
function makeStyleArg(args: readonly string[]): string | undefined {
  let style: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') break;
    if (a.startsWith('--jobserver-style=')) style = a.slice('--jobserver-style='.length);
    else if (a === '--jobserver-style') style = args[++i];
  }
  return style;
}

/** Whether make reads `--jobserver-auth=fifo:PATH` (make 4.4 and later). */
function readsFifo(make: string, env: NodeJS.ProcessEnv): boolean {
  const v = makeFacts(make, env).version;
  return v !== undefined && (v[0] > 4 || (v[0] === 4 && v[1] >= 4));
}

/** The pool's style: the one asked for, else make's own default (fifo from make 4.4). */
function poolStyle(options: MpmakeOptions, makeReadsFifo: boolean): JobserverStyle {
  return options.jobserverStyle ?? (makeReadsFifo ? 'fifo' : 'pipe');
}

async function localMake(
  options: MpmakeOptions,
  makeArgv: string[],
  env: NodeJS.ProcessEnv,
  started: number,
  mode: 'local' | 'local-fallback',
  cluster?: Cluster,
): Promise<MpmakeResult> {
  const { done } = runMake(options.make, makeArgv, env, []);
  const result = await done;
  const report: BuildReport = {
    version: 1,
    exitCode: result.code,
    signal: result.signal,
    wallMs: Date.now() - started,
    mode,
    jobs: { total: 0, remote: 0, local: 0, retried: 0, failed: 0 },
    nodes: [],
    leftOut: cluster?.leftOut ?? [],
    slots: 0,
  };
  if (options.report) writeReportQuietly(options.report, report);
  return { ...result, report };
}

/** Keeps our own pool at min(N, the cluster's slots) and refills lost tokens. */
function followCluster(pool: MakePool, cluster: Cluster, makeName: string): () => { lost: number } {
  const own = pool.own;
  if (!own) return () => ({ lost: 0 });
  const target = (): number => Math.max(1, Math.min(pool.cap ?? Infinity, cluster.totalSlots));
  const onCapacity = (): void => own.resize(target());
  cluster.on('capacity', onCapacity);
  const audit = new TokenAudit(own.path, [makeName, 'make', 'gmake']);
  const timer = setInterval(() => {
    own.absorb();
    own.refill(audit.deficit(own.count(), own.inCirculation));
  }, AUDIT_INTERVAL_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    cluster.off('capacity', onCapacity);
    const { found, expected } = own.drain();
    return { lost: Math.max(0, expected - found) };
  };
}

/**
 * The progress line's expected total: the last build's line count, else a
 * bounded `make -n` of the same goals; else why there is none.
 */
async function expectedTotal(
  lastBuild: number | undefined,
  dry: Parameters<typeof dryRunTotal>[0] & { noHistory: string },
): Promise<{ expected?: { total: number; from: string }; noTotal?: string }> {
  if (lastBuild !== undefined) return { expected: { total: lastBuild, from: 'the last build' } };
  const { noHistory } = dry;
  const r = await dryRunTotal(dry);
  if ('total' in r) return { expected: { total: r.total, from: `make -n, ${noHistory}` } };
  return { noTotal: `${noHistory}; ${r.reason}` };
}

async function clusterMake(
  options: MpmakeOptions,
  args: string[],
  jobs: JobsRequest,
  where: { cwd: string; makefiles: string[] },
  env: NodeJS.ProcessEnv,
  cluster: Cluster,
  started: number,
  /** Addresses of the agents inside this process (`localhost/N`). */
  inProcess: ReadonlySet<string>,
): Promise<MpmakeResult> {
  const runDir = makeRunDir();
  let server: ShimServer | undefined;
  let pool: MakePool | undefined;
  try {
    const shim = installShim(runDir.path);
    if (!shim.native)
      say('mpmake: no native shim was built (no C compiler?); using the slower TypeScript shim');
    const makeReadsFifo = readsFifo(options.make, env);
    // With the interposer, make keeps its own SHELL: no pre-pass needed.
    const preload = shim.native ? preloadPath() : undefined;
    pool = setupMakePool({
      env,
      jobs,
      runDir: runDir.path,
      clusterSlots: cluster.totalSlots,
      style: poolStyle(options, makeReadsFifo),
      makeReadsFifo,
      makeStyle: makeStyleArg(args),
      makeName: makeNameOf(options),
      adopt: preload !== undefined,
      adoptStyle:
        makeReadsFifo && makeStyleArg(args) === undefined ? options.jobserverStyle : undefined,
    });
    if (pool.warning) say(pool.warning);
    const topShell = preload
      ? '/bin/sh'
      : (options.shell ?? intendedShell(where.cwd, where.makefiles).shell);
    const shells = new ShellResolver(options.shell, say);
    // What the last build of this tree and goals taught: how many lines, how
    // long each kind of command runs. Not under -n/-q, which run nothing.
    const dryRun = isDryRun(args);
    const historyPath = historyFile(env, where.cwd, args);
    const learn = !dryRun && !options.noLearn;
    const history = learn ? readHistory(historyPath) : undefined;
    const times = new CommandTimes(history?.times);
    const router = new RecipeRouter(cluster, shells, {
      times: learn ? times : undefined,
      // --mp-local= (empty): nothing stays on the client by choice, short lines neither.
      shortLines: options.local.length > 0,
      shimPath: shim.shellPath,
      color: options.color,
      fallback: !options.noFallback,
      warn: say,
      envFilter: envFilter({ allow: options.envAllow, deny: options.envDeny }),
      fsWaitMs: options.fsWaitMs,
      writes: new WriteLog(started),
      onClient: inProcess,
      forcedShell: options.shell,
      nodeWaitMs: nodeWaitBoundMs(options.connectTimeoutMs),
    });
    const progress = !options.quiet && !dryRun && process.stderr.isTTY === true;
    const total = progress
      ? await expectedTotal(history?.ok ? history.jobs : undefined, {
          noHistory: !learn
            ? 'no history (--mp-no-learn)'
            : history
              ? 'the last build of this tree failed'
              : 'no history for this tree',
          make: options.make,
          args,
          cwd: where.cwd,
          env,
          local: options.local,
        })
      : {};
    const observers = attachObservers(router, cluster, {
      trace: options.trace,
      progress,
      ...total,
    });
    const ends: JobEndEvent[] = [];
    router.on('job-end', (e) => {
      if (e.fs || e.inputWait) ends.push(e);
    });
    server = new ShimServer(
      (req, conn) => router.handle(req, conn),
      (w) => router.wroteHere(w),
    );
    const sock = `${runDir.path}/shim.sock`;
    await server.listen(sock);

    const makeName = basename(options.make);
    // Without fds to look at, or with a make that leaks the pool's fds to
    // every child, the shim knows a recursive line by its text instead.
    const textual =
      pool.textual || (pool.own !== undefined && makeFacts(options.make, env).leaksJobserver);
    const stopFollowing = followCluster(pool, cluster, makeName);
    let done: Promise<MakeResult>;
    if (preload) {
      // make reads its makefiles untouched; the interposer starts the shim
      // in place of each program make runs (see lib/shim/preload.c).
      const link: BuildLink = {
        __MPMAKE_SOCK: sock,
        __MPMAKE_SHIM: nativeShimPath(),
        __MPMAKE_PRELOAD: preload,
        __MPMAKE_LOCAL: options.local.join(' '),
        __MPMAKE_MAKE_NAME: makeName,
      };
      if (textual) link['__MPMAKE_TEXTUAL'] = '1';
      if (pool.adopted && pool.own) link['__MPMAKE_POOL'] = pool.own.path;
      const makeEnv = linkedMakeEnv(withMakeflags(env, pool), link, preload);
      trace(`make ${args.join(' ')}: jobserver ${pool.kind}, MAKEFLAGS=${makeEnv['MAKEFLAGS']}`);
      done = runMake(
        options.make,
        [...pool.makeArgs, ...args],
        makeEnv,
        pool.fds,
        typedCommand(),
      ).done;
    } else {
      done = legacyMake(options, args, env, pool, shim.shellPath, sock, topShell, textual);
    }
    // make holds its ends of our pool now.
    for (const fd of pool.handedFds) closeQuietly(fd);
    const result = await done;
    // Nothing after the build may turn make's status into another one.
    try {
      const tokens = stopFollowing();
      if (tokens.lost > 0)
        say(
          `mpmake: ${tokens.lost} jobserver tokens were not returned (a client died holding them)`,
        );

      // The last shims' lag reports may still be on their way.
      await router.settled();
      // Each job once, where it finally ran (re-runs counted apart).
      const onClient = cluster.stats.perNode.get('local') ?? 0;
      const report: BuildReport = {
        version: 1,
        exitCode: result.code,
        signal: result.signal,
        wallMs: Date.now() - started,
        mode: 'cluster',
        jobs: {
          total: cluster.stats.remote + cluster.stats.gaveUp + router.stats.local,
          // Jobs on the client's own slots (the embedded agent) count as local.
          remote: cluster.stats.remote - onClient,
          local: router.stats.local + onClient,
          retried: cluster.stats.retried,
          failed: router.stats.failed + router.stats.errors,
          refused: router.stats.refused + cluster.stats.refused,
          refusedByKind: {
            ...cluster.stats.refusedByKind,
            ...(router.stats.refused > 0 ? { 'cluster-busy': router.stats.refused } : {}),
          },
          moved: cluster.stats.moved,
          short: router.stats.short,
          shortBusy: router.stats.shortBusy,
        },
        nodes: cluster.usable.map((n) => ({
          id: n.nodeId,
          address: n.address,
          slots: n.slots,
          jobs: cluster.stats.perNode.get(n.nodeId) ?? 0,
        })),
        leftOut: cluster.leftOut,
        sameAgent: cluster.sameAgent,
        reruns: cluster.stats.reruns,
        ...(cluster.stats.fenced.length ? { fenced: cluster.stats.fenced } : {}),
        slots: pool.own
          ? pool.own.slots
          : pool.kind === 'none'
            ? 1
            : (pool.cap ?? cluster.totalSlots),
        jobserver: {
          kind: pool.kind,
          tokensLost: tokens.lost,
          tokensRefilled: pool.own?.stats.refilled ?? 0,
        },
        heldBackEnv: [...router.heldBackEnv.keys()].sort(),
        fs: fsReport(options.fsWaitMs, ends),
      };
      observers.finish(report);
      if (options.report) writeReportQuietly(options.report, report);
      const held = heldBackLine(router.heldBackEnv);
      if (held !== undefined && !options.quiet) say(held);
      if (!options.quiet && !dryRun) say(summaryLine(report));
      if (learn && result.signal === null) {
        writeHistory(historyPath, {
          version: 2,
          jobs: report.jobs.total,
          wallMs: report.wallMs,
          ok: result.code === 0,
          times: times.toJSON(),
        });
      }
      return { ...result, report };
    } catch (err) {
      say(`mpmake: after the build: ${(err as Error).message}`);
      return result;
    }
  } finally {
    server?.close();
    pool?.own?.close();
    cluster.close();
    runDir.remove();
  }
}

/**
 * Without the interposer: make gets the shim as `SHELL=` and each line's
 * target as `MPMAKE_TARGET=$@` on its command line (visible in MAKEFLAGS),
 * and the makefile's own shell from a pre-pass (intended-shell.ts).
 */
function legacyMake(
  options: MpmakeOptions,
  args: string[],
  env: NodeJS.ProcessEnv,
  pool: MakePool,
  shimPath: string,
  sock: string,
  topShell: string,
  textual: boolean,
): Promise<MakeResult> {
  const makeEnv: NodeJS.ProcessEnv = {
    ...withMakeflags(env, pool),
    MPMAKE_SOCK: sock,
    MPMAKE_REAL_SHELL: topShell,
    MPMAKE_LOCAL: options.local.join(' '),
    MPMAKE_MAKE_NAME: basename(options.make),
  };
  delete makeEnv['MFLAGS'];
  delete makeEnv['MPMAKE_JOBSERVER_TEXTUAL'];
  if (textual) makeEnv['MPMAKE_JOBSERVER_TEXTUAL'] = '1';
  trace(`make ${args.join(' ')}: jobserver ${pool.kind}, MAKEFLAGS=${makeEnv['MAKEFLAGS']}`);
  // MPMAKE_TARGET=$@ (and MPMAKE_PREREQS) are expanded per target when make
  // exports them to a recipe: the coordinator learns each line's target.
  return runMake(
    options.make,
    [...pool.makeArgs, ...args, `SHELL=${shimPath}`, 'MPMAKE_TARGET=$@', MPMAKE_PREREQS],
    makeEnv,
    pool.fds,
  ).done;
}

/** The user's environment with the pool's MAKEFLAGS (none when there is nothing to say). */
function withMakeflags(env: NodeJS.ProcessEnv, pool: MakePool): NodeJS.ProcessEnv {
  const out = { ...env };
  if (pool.makeflags === undefined) return out;
  if (pool.kind === 'none' && env['MAKEFLAGS'] === undefined && pool.makeflags.trim() === '')
    delete out['MAKEFLAGS'];
  else out['MAKEFLAGS'] = pool.makeflags;
  return out;
}

/**
 * The environment of a make linked to a build through the interposer: the
 * user's own, plus LD_PRELOAD naming the interposer first (the user's own
 * LD_PRELOAD after it, and kept in __MPMAKE_LD_PRELOAD so the interposer
 * puts it back) and the private variables. The interposer takes all of
 * that out before make's main() runs.
 */
function linkedMakeEnv(
  env: NodeJS.ProcessEnv,
  link: BuildLink,
  preload: string,
): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) if (!k.startsWith('__MPMAKE_')) out[k] = v;
  const user = env['LD_PRELOAD'];
  out['LD_PRELOAD'] = user ? `${preload} ${user}` : preload;
  if (user !== undefined) out['__MPMAKE_LD_PRELOAD'] = user;
  for (const [k, v] of Object.entries(link)) if (k !== '__MPMAKE_LD_PRELOAD') out[k] = v;
  return out;
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
