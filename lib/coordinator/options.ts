import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { fileProblem, OutputPathError, UsageError } from '../errors.js';
import { outputPathProblem } from '../output-file.js';
import { parseHostList, type HostSpec, type MungeClientMode } from '../client/host-list.js';
import { DEFAULT_MUNGE_SOCKET } from '../protocol/munge.js';
import { isLoopbackHost } from '../protocol/tls.js';
import type { FenceOptions } from './fence.js';

/** mpmake's own options, after flags, environment and config file are merged. */
export interface MpmakeOptions {
  hosts: HostSpec[];
  /**
   * Where a host list that names no agent came from, when one was given
   * (`--mp-hosts=`, `MPMAKE_HOSTS` set but empty, an empty config key):
   * most often an unset shell variable, so mpmake says so.
   */
  emptyHosts: { from: string; empty: boolean } | undefined;
  secretFile: string | undefined;
  noFallback: boolean;
  quiet: boolean;
  /** Keep no per-tree history and send every line to nodes (no short-line shortcut). */
  noLearn: boolean;
  /** Commands the shim runs locally without a round trip. */
  local: string[];
  report: string | undefined;
  trace: string | undefined;
  shell: string | undefined;
  color: 'auto' | 'always' | 'never';
  make: string;
  placement: 'lowest-wait' | 'first-free';
  explain: boolean;
  /** undefined: as make would (its --jobserver-style, else fifo from make 4.4 on). */
  jobserverStyle: 'pipe' | 'fifo' | undefined;
  connectTimeoutMs: number;
  heartbeatTimeoutMs: number;
  maxClockSkewMs: number;
  /** --mp-fs-wait: bound on waiting to see a file as its writer did; 0 = off. */
  fsWaitMs: number;
  /** --mp-fence: the command that cuts a lost node off before its jobs run again. */
  fence: FenceOptions | undefined;
  /**
   * TLS to every agent, keyed by the secret: true/false when set; undefined
   * means the default, TLS to every host off loopback (each HostSpec.tls).
   */
  tls: boolean | undefined;
  /** Plaintext to hosts off loopback allowed (agents run with --insecure). */
  insecure: boolean;
  /** Names (or `*` patterns) shipped to nodes even when they look like secrets. */
  envAllow: string[];
  /** More name patterns held back from nodes. */
  envDeny: string[];
  help: boolean;
  version: boolean;
  /** Where each option given came from (`--mp-make`, `MPMAKE_MAKE`, `config "make" (FILE)`). */
  from: Record<string, string>;
  /** Notes for the user about values that were accepted but do not apply (distcc host options). */
  notes: string[];
}

export const DEFAULT_LOCAL = ['mkdir', 'rm', 'touch', 'ln', 'echo', 'printf', 'true'];

type Kind = 'string' | 'bool' | 'ms';
/** Options whose environment variable set to "" means an empty list, not "unset". */
const EMPTY_MEANS_NONE = new Set(['local']);
/** Options whose config value may also be a JSON array of strings. */
const LIST_KEYS = new Set(['hosts', 'local', 'env-allow', 'env-deny']);
/** Every --mp-* option: its kind, environment variable and config key. */
const SPEC: Record<string, { kind: Kind; env: string; key: string }> = {
  hosts: { kind: 'string', env: 'MPMAKE_HOSTS', key: 'hosts' },
  'secret-file': { kind: 'string', env: 'MPMAKE_SECRET_FILE', key: 'secretFile' },
  'no-fallback': { kind: 'bool', env: 'MPMAKE_NO_FALLBACK', key: 'noFallback' },
  quiet: { kind: 'bool', env: 'MPMAKE_QUIET', key: 'quiet' },
  'no-learn': { kind: 'bool', env: 'MPMAKE_NO_LEARN', key: 'noLearn' },
  local: { kind: 'string', env: 'MPMAKE_LOCAL', key: 'local' },
  report: { kind: 'string', env: 'MPMAKE_REPORT', key: 'report' },
  trace: { kind: 'string', env: 'MPMAKE_TRACE_FILE', key: 'trace' },
  shell: { kind: 'string', env: 'MPMAKE_SHELL', key: 'shell' },
  color: { kind: 'string', env: 'MPMAKE_COLOR', key: 'color' },
  make: { kind: 'string', env: 'MPMAKE_MAKE', key: 'make' },
  placement: { kind: 'string', env: 'MPMAKE_PLACEMENT', key: 'placement' },
  explain: { kind: 'bool', env: 'MPMAKE_EXPLAIN', key: 'explain' },
  'jobserver-style': { kind: 'string', env: 'MPMAKE_JOBSERVER_STYLE', key: 'jobserverStyle' },
  'connect-timeout': { kind: 'ms', env: 'MPMAKE_CONNECT_TIMEOUT', key: 'connectTimeoutMs' },
  'heartbeat-timeout': { kind: 'ms', env: 'MPMAKE_HEARTBEAT_TIMEOUT', key: 'heartbeatTimeoutMs' },
  'max-clock-skew': { kind: 'ms', env: 'MPMAKE_MAX_CLOCK_SKEW', key: 'maxClockSkewMs' },
  'fs-wait': { kind: 'ms', env: 'MPMAKE_FS_WAIT', key: 'fsWaitMs' },
  fence: { kind: 'string', env: 'MPMAKE_FENCE', key: 'fence' },
  'fence-timeout': { kind: 'ms', env: 'MPMAKE_FENCE_TIMEOUT', key: 'fenceTimeoutMs' },
  tls: { kind: 'bool', env: 'MPMAKE_TLS', key: 'tls' },
  insecure: { kind: 'bool', env: 'MPMAKE_INSECURE', key: 'insecure' },
  auth: { kind: 'string', env: 'MPMAKE_AUTH', key: 'auth' },
  'munge-socket': { kind: 'string', env: 'MPMAKE_MUNGE_SOCKET', key: 'mungeSocket' },
  'env-allow': { kind: 'string', env: 'MPMAKE_ENV_ALLOW', key: 'envAllow' },
  'env-deny': { kind: 'string', env: 'MPMAKE_ENV_DENY', key: 'envDeny' },
  config: { kind: 'string', env: 'MPMAKE_CONFIG', key: 'config' },
  help: { kind: 'bool', env: '', key: 'help' },
  version: { kind: 'bool', env: '', key: 'version' },
};

/** Default of --mp-fs-wait, ms: past NFS's 1 s and sshfs's usual cache times' first retries. */
export const DEFAULT_FS_WAIT_MS = 2000;

function fsWait(v: { value: string; from: string } | undefined): number {
  if (!v) return DEFAULT_FS_WAIT_MS;
  if (!/^[0-9]+$/.test(v.value) || Number(v.value) > 600_000) {
    throw new UsageError(
      `${v.from} must be a number of milliseconds from 0 (do not check) to 600000, not "${v.value}"`,
    );
  }
  return Number(v.value);
}

/** Default of --mp-fence-timeout, ms: Pacemaker's default stonith-timeout (a power switch can be slow). */
export const DEFAULT_FENCE_TIMEOUT_MS = 60_000;

/** `--mp-fence` and `--mp-fence-timeout`. */
function fenceOption(
  command: { value: string; from: string } | undefined,
  timeoutMs: number | undefined,
  timeoutFrom: string | undefined,
): FenceOptions | undefined {
  if (command === undefined) {
    if (timeoutFrom !== undefined) {
      throw new UsageError(
        `${timeoutFrom} goes with a fence command: set --mp-fence, MPMAKE_FENCE or config key "fence"`,
      );
    }
    return undefined;
  }
  if (command.value.trim() === '') {
    throw new UsageError(
      `${command.from} must be a shell command that cuts the node named in $MPMAKE_FENCE_NODE ` +
        '($MPMAKE_FENCE_HOST) off from the shared files and exits 0, not empty',
    );
  }
  return {
    command: command.value,
    from: command.from,
    timeoutMs: timeoutMs ?? DEFAULT_FENCE_TIMEOUT_MS,
  };
}

export interface ParsedArgs {
  options: MpmakeOptions;
  /** Everything that is not --mp-*: GNU make's arguments, in order. */
  makeArgv: string[];
}

/** The config file: --mp-config, MPMAKE_CONFIG, or ~/.config/mpmake/config.json. */
function loadConfig(
  path: string | undefined,
  env: NodeJS.ProcessEnv,
  pathFrom: string,
): { file: string; data: Record<string, unknown> } {
  const explicit = path !== undefined;
  const file =
    path ??
    join(
      env['XDG_CONFIG_HOME'] || join(env['HOME'] || homedir(), '.config'),
      'mpmake',
      'config.json',
    );
  if (!existsSync(file)) {
    if (explicit)
      throw new UsageError(
        `${pathFrom}: config file ${file} does not exist; create it or give another file`,
      );
    return { file, data: {} };
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`config file ${file} ${fileProblem(err)}; fix it or set MPMAKE_CONFIG`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new UsageError(
      `config file ${file} is not valid JSON (${(err as Error).message}); fix its syntax`,
    );
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new UsageError(`config file ${file} must hold a JSON object`);
  }
  const known = new Set(Object.values(SPEC).map((s) => s.key));
  for (const k of Object.keys(data)) {
    if (!known.has(k))
      throw new UsageError(
        `config file ${file}: unknown key "${k}"; known keys: ${[...known].join(', ')}`,
      );
  }
  return { file, data: data as Record<string, unknown> };
}

/**
 * Takes mpmake's `--mp-*` options out of argv (the rest is make's) and
 * merges them with MPMAKE_* environment variables and the config file:
 * flags beat environment, environment beats the file.
 */
export function parseArgs(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  /** How the user wrote a flag (mpm's `--hosts` is handed to us as `--mp-hosts`). */
  flagName: (name: string) => string = (name) => `--mp-${name}`,
): ParsedArgs {
  const flags = new Map<string, string>();
  const makeArgv: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      makeArgv.push(...argv.slice(i));
      break;
    }
    if (/^--mp([^-]|$)/.test(a)) {
      // GNU make has no option starting with --mp: a typo of one of ours.
      const typed = a.split('=')[0]!;
      const meant = typed.replace(/^--mp_?/, '--mp-');
      throw new UsageError(
        `unknown option ${typed}: mpmake's options start with --mp-${meant === '--mp-' ? '' : ` (${meant}?)`}; see mpmake --mp-help`,
      );
    }
    if (!a.startsWith('--mp-')) {
      makeArgv.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(5, eq < 0 ? undefined : eq);
    const spec = SPEC[name];
    if (!spec) {
      throw new UsageError(
        `unknown option ${a.slice(0, eq < 0 ? undefined : eq)}; see mpmake --mp-help`,
      );
    }
    if (spec.kind === 'bool') {
      if (eq >= 0) throw new UsageError(`--mp-${name} takes no value`);
      flags.set(name, '1');
    } else if (eq >= 0) flags.set(name, a.slice(eq + 1));
    else if (i + 1 < argv.length) flags.set(name, argv[++i]!);
    else throw new UsageError(`--mp-${name} needs a value`);
  }
  const configPath = flags.get('config') ?? (env['MPMAKE_CONFIG'] || undefined);
  const { file: configFile, data: config } = loadConfig(
    configPath,
    env,
    flags.has('config') ? flagName('config') : 'MPMAKE_CONFIG',
  );
  const from: Record<string, string> = {};
  const get = (name: string): { value: string; from: string } | undefined => {
    const v = lookup(name);
    if (v) from[name] = v.from;
    return v;
  };
  const lookup = (name: string): { value: string; from: string } | undefined => {
    const spec = SPEC[name]!;
    const flag = flags.get(name);
    if (flag !== undefined) return { value: flag, from: flagName(name) };
    const e = spec.env ? env[spec.env] : undefined;
    // Set but empty means unset, except for a list where empty means none.
    if (e !== undefined && (e !== '' || EMPTY_MEANS_NONE.has(name)))
      return { value: e, from: spec.env };
    const c = config[spec.key];
    if (c === undefined) return undefined;
    const where = `config key "${spec.key}" in ${configFile}`;
    if (typeof c === 'string') return { value: c, from: where };
    if (LIST_KEYS.has(name)) {
      if (!Array.isArray(c) || !c.every((x) => typeof x === 'string')) {
        throw new UsageError(
          `${where} must be a string or an array of strings, not ${JSON.stringify(c)}; e.g. ["nodeA:7543", "nodeB:7543/4"]`,
        );
      }
      return { value: c.join(' '), from: where };
    }
    if (spec.kind === 'string') {
      throw new UsageError(`${where} must be a string, not ${JSON.stringify(c)}`);
    }
    return {
      value: typeof c === 'boolean' || typeof c === 'number' ? String(c) : JSON.stringify(c),
      from: where,
    };
  };
  const bool = (name: string): boolean => {
    const v = get(name);
    if (!v) return false;
    if (/^(1|true|yes)$/i.test(v.value)) return true;
    if (/^(0|false|no|)$/i.test(v.value)) return false;
    throw new UsageError(`${v.from} must be 1 (or true) or 0 (or false), not "${v.value}"`);
  };
  const ms = (name: string, dflt: number): number => {
    const v = get(name);
    if (!v) return dflt;
    if (!/^[0-9]+$/.test(v.value) || Number(v.value) < 1) {
      throw new UsageError(`${v.from} must be a positive number of milliseconds, not "${v.value}"`);
    }
    return Number(v.value);
  };
  const hosts = get('hosts');
  const color = oneOf(get('color'), ['auto', 'always', 'never'] as const, 'auto');
  const placement = oneOf(get('placement'), ['lowest-wait', 'first-free'] as const, 'lowest-wait');
  const styleGiven = get('jobserver-style');
  const style = styleGiven ? oneOf(styleGiven, ['pipe', 'fifo'] as const, 'pipe') : undefined;
  const local = get('local');
  const tls = get('tls') ? bool('tls') : undefined;
  const insecure = bool('insecure');
  const secretFile = get('secret-file')?.value;
  if (tls && secretFile === undefined) {
    throw new UsageError(
      `${from['tls']} needs the cluster secret, from which the TLS key is derived: set --mp-secret-file, MPMAKE_SECRET_FILE or config key "secretFile"`,
    );
  }
  const notes: string[] = [];
  const munge = mungeMode(get('auth'), get('munge-socket'));
  const parsedHosts = withTls(
    hosts ? parseHostList(hosts.value, hosts.from, notes) : [],
    tls,
    insecure,
    from,
    notes,
  ).map((h) => (h.local || munge === undefined ? h : { ...h, munge }));
  const options: MpmakeOptions = {
    hosts: parsedHosts,
    emptyHosts:
      parsedHosts.length > 0
        ? undefined
        : hosts
          ? { from: hosts.from, empty: hosts.value.trim() === '' }
          : env['MPMAKE_HOSTS'] === ''
            ? { from: 'MPMAKE_HOSTS', empty: true }
            : undefined,
    secretFile,
    noFallback: bool('no-fallback'),
    quiet: bool('quiet'),
    noLearn: bool('no-learn'),
    local: local ? nameList(local, /^[^\s,'"\\$`;|&]+$/, 'command names') : DEFAULT_LOCAL,
    report: outputPath(get('report')),
    trace: outputPath(get('trace')),
    shell: get('shell')?.value,
    color,
    make: get('make')?.value ?? 'make',
    jobserverStyle: style,
    placement,
    explain: bool('explain'),
    connectTimeoutMs: ms('connect-timeout', 3000),
    heartbeatTimeoutMs: ms('heartbeat-timeout', 5000),
    maxClockSkewMs: ms('max-clock-skew', 1000),
    fsWaitMs: fsWait(get('fs-wait')),
    fence: fenceOption(
      get('fence'),
      get('fence-timeout') ? ms('fence-timeout', DEFAULT_FENCE_TIMEOUT_MS) : undefined,
      get('fence-timeout')?.from,
    ),
    tls,
    insecure,
    envAllow: nameList(get('env-allow')),
    envDeny: nameList(get('env-deny')),
    help: flags.has('help'),
    version: flags.has('version'),
    from,
    notes,
  };
  return { options, makeArgv };
}

/**
 * Why there is no cluster, and what to do, when no host list names an
 * agent: the empty list's source when one was given, else that none is
 * configured.
 */
export function noHostsProblem(options: MpmakeOptions): { why: string; fix: string } {
  const e = options.emptyHosts;
  if (e === undefined) {
    return {
      why: 'no cluster configured',
      fix: 'list the agents in MPMAKE_HOSTS, --mp-hosts or the config file\'s "hosts"',
    };
  }
  const what = e.empty ? 'is empty (an unset shell variable?)' : 'lists no agent';
  if (e.from === 'MPMAKE_HOSTS') {
    return {
      why: `MPMAKE_HOSTS ${what} and no config file lists hosts`,
      fix: 'set it to the agents, HOST[:PORT][/SLOTS] separated by spaces, or unset it',
    };
  }
  if (e.from.startsWith('config key')) {
    return {
      why: `${e.from} ${e.empty ? 'is empty' : what}`,
      fix: 'list the agents there, as "HOST[:PORT][/SLOTS]" strings',
    };
  }
  return {
    why: `${e.from} ${what}`,
    fix: `give it the agents, HOST[:PORT][/SLOTS] separated by spaces, or leave ${e.from} out to use MPMAKE_HOSTS or the config file`,
  };
}

/** `--mp-auth` and `--mp-munge-socket`: undefined for the shared secret. */
function mungeMode(
  auth: { value: string; from: string } | undefined,
  socket: { value: string; from: string } | undefined,
): MungeClientMode | undefined {
  const mode = oneOf(auth, ['secret', 'munge'] as const, 'secret');
  if (mode === 'secret') {
    if (socket !== undefined) {
      throw new UsageError(`${socket.from} goes with --mp-auth=munge (MPMAKE_AUTH=munge)`);
    }
    return undefined;
  }
  if (socket !== undefined && !isAbsolute(socket.value)) {
    throw new UsageError(`${socket.from} must be an absolute path, not "${socket.value}"`);
  }
  return {
    socket: socket?.value ?? DEFAULT_MUNGE_SOCKET,
    from: auth!.from,
    socketFrom: socket?.from,
  };
}

/** A value that must be one of `choices`, or `dflt` when not given. */
function oneOf<T extends string>(
  v: { value: string; from: string } | undefined,
  choices: readonly T[],
  dflt: T,
): T {
  if (!v) return dflt;
  if ((choices as readonly string[]).includes(v.value)) return v.value as T;
  throw new UsageError(`${v.from} must be ${choices.join(' or ')}, not "${v.value}"`);
}

/**
 * A list of variable names or `*`/`?` patterns: separated by commas or
 * spaces, or a JSON array in the config file.
 */
function nameList(
  v: { value: string; from: string } | undefined,
  valid = /^[A-Za-z0-9_*?]+$/,
  what = 'variable names or patterns (letters, digits, _, * and ?)',
): string[] {
  if (!v) return [];
  let items: unknown = undefined;
  if (v.value.trim().startsWith('[')) {
    try {
      items = JSON.parse(v.value);
    } catch {
      // not JSON: split as text below
    }
  }
  const list = Array.isArray(items) ? items : v.value.split(/[\s,]+/).filter(Boolean);
  for (const item of list) {
    if (typeof item !== 'string' || !valid.test(item)) {
      throw new UsageError(`${v.from} must list ${what}, not ${JSON.stringify(item)}`);
    }
  }
  return list as string[];
}

export const MPMAKE_HELP = `Usage: mpmake [--mp-OPTION...] [GNU make arguments...]

Runs GNU make; every recipe line runs on the lowest-load node of the cluster.
All arguments not starting with --mp- go to make unchanged. -j alone means
the cluster's total slots; -jN at most N recipes at once across the cluster.

Options (environment variable; config file key):
  --mp-hosts=LIST          agents, "host[:port][/slots] ..." (MPMAKE_HOSTS; hosts)
  --mp-secret-file=FILE    cluster shared secret (MPMAKE_SECRET_FILE; secretFile)
  --mp-no-fallback         fail instead of building locally when no agent works
                           (MPMAKE_NO_FALLBACK=1; noFallback)
  --mp-quiet               no summary line (MPMAKE_QUIET=1; quiet)
  --mp-no-learn            keep no build history; send every line to nodes, even
                           ones shorter than a round trip (MPMAKE_NO_LEARN=1; noLearn)
  --mp-local=LIST          commands run locally without a round trip
                           (MPMAKE_LOCAL; local) [${DEFAULT_LOCAL.join(' ')}]
  --mp-report=FILE         write a JSON report of the build (MPMAKE_REPORT; report)
  --mp-trace=FILE          write a Chrome trace-event timeline (MPMAKE_TRACE_FILE; trace)
  --mp-shell=PATH          shell for recipes, instead of the makefile's SHELL
                           (MPMAKE_SHELL; shell)
  --mp-color=auto|always|never  run jobs under a pseudo-terminal on the node when
                           make's output is a terminal (MPMAKE_COLOR; color) [auto]
  --mp-make=PROGRAM        the GNU make to run (MPMAKE_MAKE; make) [make]
  --mp-explain             print, for each job, the candidate nodes and their scores
                           (MPMAKE_EXPLAIN=1; explain)
  --mp-placement=lowest-wait|first-free  placement policy; first-free (the first node
                           with a free slot, else refuse) is the LSF-like baseline
                           the benchmarks compare with (MPMAKE_PLACEMENT) [lowest-wait]
  --mp-jobserver-style=pipe|fifo  the pool's style for make (fifo needs make >= 4.4)
                           (MPMAKE_JOBSERVER_STYLE; jobserverStyle) [as make: fifo from 4.4]
  --mp-connect-timeout=MS  per-agent connect timeout [3000]
  --mp-heartbeat-timeout=MS  silence after which a node is down [5000]
  --mp-max-clock-skew=MS   largest tolerated clock difference [1000]
  --mp-fs-wait=MS          wait at most this long to see a file as the machine that
                           wrote it in this build did (shared file system caches);
                           0: do not check (MPMAKE_FS_WAIT; fsWaitMs) [2000]
  --mp-fence=COMMAND       before a job of a lost node runs again, run COMMAND
                           (sh -c; $MPMAKE_FENCE_NODE, $MPMAKE_FENCE_HOST) to cut
                           that node off from the shared files; exit 0 = fenced,
                           else its jobs fail (MPMAKE_FENCE; fence) [none]
  --mp-fence-timeout=MS    a fence not done by then failed
                           (MPMAKE_FENCE_TIMEOUT; fenceTimeoutMs) [60000]
  --mp-tls                 TLS to every agent, also on loopback; needs the secret
                           (MPMAKE_TLS=1; tls) [TLS to every host off loopback;
                           MPMAKE_TLS=0 turns it off, with a warning]
  --mp-insecure            plaintext to hosts off loopback (agents run with
                           --insecure), with a warning (MPMAKE_INSECURE=1; insecure)
  --mp-auth=MODE           secret (default), or munge: prove your uid with a MUNGE
                           credential; your jobs run as you on agents run with
                           --auth munge (MPMAKE_AUTH; auth)
  --mp-munge-socket=PATH   munged's socket (MPMAKE_MUNGE_SOCKET; mungeSocket)
                           [/run/munge/munge.socket.2]
  --mp-env-allow=NAMES     ship these variables even though they look like
                           secrets: NAME or PATTERN, comma-separated
                           (MPMAKE_ENV_ALLOW; envAllow)
  --mp-env-deny=PATTERNS   hold back these variables too (MPMAKE_ENV_DENY; envDeny)
  --mp-config=FILE         config file (MPMAKE_CONFIG) [~/.config/mpmake/config.json]
  --mp-help, --mp-version
`;

/**
 * A file mpmake will write after the build, checked now (before make
 * starts): a build must not run for an hour and then fail to say how it went.
 */
function outputPath(v: { value: string; from: string } | undefined): string | undefined {
  if (v === undefined) return undefined;
  const problem = outputPathProblem(v.value);
  if (problem !== undefined) {
    throw new OutputPathError(
      `${v.from}: cannot write ${JSON.stringify(v.value)}: ${problem}; choose a writable path`,
    );
  }
  return v.value;
}

/**
 * Whether each agent is reached over TLS: as `--mp-tls` (or MPMAKE_TLS=0)
 * says, else TLS to every host off loopback unless `--mp-insecure`. Plaintext
 * beyond loopback gets a warning: a relay or wiretap there reads and changes
 * everything.
 */
function withTls(
  hosts: HostSpec[],
  tls: boolean | undefined,
  insecure: boolean,
  from: Record<string, string>,
  notes: string[],
): HostSpec[] {
  const out = hosts.map((h) =>
    h.local ? h : { ...h, tls: tls ?? (!isLoopbackHost(h.host) && !insecure) },
  );
  const plain = out.filter((h) => !h.local && !h.tls && !isLoopbackHost(h.host));
  if (plain.length > 0) {
    const why = tls === false ? from['tls'] : from['insecure'];
    notes.push(
      `warning: no TLS to ${plain.map((h) => h.address).join(', ')} (${why}): anyone on the ` +
        "network path can read the build's environment and output, and run commands as you",
    );
  }
  return out;
}
