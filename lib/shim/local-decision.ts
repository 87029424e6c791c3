/**
 * "Does this recipe line stay local?" — the TypeScript twin of the decision
 * code in shim.c, used by the fallback shim. The rules and their order are
 * the same (DESIGN.md, "Lines that stay local"):
 *
 *   1. MPMAKE_SOCK unset/empty (as on a node)           -> plain shell
 *   2. not a `-c` invocation (`$(SHELL) ./config.status`) -> plain shell
 *   3. the parent process is not make                     -> plain shell
 *   4. a `$(shell ...)` call                              -> plain shell
 *   5. a recursive make line                              -> plain shell
 *   6. the first word is on MPMAKE_LOCAL                  -> plain shell
 *   7. otherwise                                          -> coordinator
 *
 * The pure parts are exported for tests; what needs /proc goes through
 * `ShimProbes`, so `decide()` can be tested with fakes too.
 */
import fs from 'node:fs';

export type ShimEnv = Readonly<Record<string, string | undefined>>;

export type LocalReason =
  | 'no-coordinator'
  | 'not-dash-c'
  | 'parent-not-make'
  | 'shell-function'
  | 'recursive-make'
  | 'local-list';

export type Decision = { where: 'local'; reason: LocalReason } | { where: 'coordinator' };

export const DEFAULT_REAL_SHELL = '/bin/sh';
export const DEFAULT_MAKE_NAME = 'make';

/** The shell to exec for local lines: MPMAKE_REAL_SHELL, else /bin/sh. */
export function realShell(env: ShimEnv): string {
  const s = env.MPMAKE_REAL_SHELL;
  return s ? s : DEFAULT_REAL_SHELL;
}

/** MPMAKE_MAKE_NAME, else "make". */
export function makeName(env: ShimEnv): string {
  const s = env.MPMAKE_MAKE_NAME;
  return s ? s : DEFAULT_MAKE_NAME;
}

/**
 * make runs `SHELL <.SHELLFLAGS words> line`: a `-c` invocation has at least
 * one flag word before the last argument that starts with '-' and contains
 * 'c' (-c, -ec, -xc ...). Long options (--norc) do not count.
 * `argv` includes argv[0].
 */
export function isDashC(argv: readonly string[]): boolean {
  if (argv.length < 3) return false;
  for (let i = 1; i <= argv.length - 2; i++) {
    const w = argv[i]!;
    if (w.startsWith('-') && !w.startsWith('--') && w.includes('c', 1)) return true;
  }
  return false;
}

/**
 * Whether /proc/<pid>/comm names a make: it starts with "make", "gmake" or
 * MPMAKE_MAKE_NAME (comm is cut at 15 characters).
 */
export function commIsMake(comm: string, name: string = DEFAULT_MAKE_NAME): boolean {
  const n = name.slice(0, 15);
  return (
    comm.startsWith('make') || comm.startsWith('gmake') || (n.length > 0 && comm.startsWith(n))
  );
}

/**
 * MAKEFLAGS' option words: split on unescaped blanks, backslash escapes
 * removed, stopping at the "--" that starts the variable assignments.
 */
export function makeflagsWords(makeflags: string): string[] {
  const words: string[] = [];
  let i = 0;
  const n = makeflags.length;
  for (;;) {
    while (i < n && (makeflags[i] === ' ' || makeflags[i] === '\t')) i++;
    if (i >= n) break;
    let w = '';
    while (i < n && makeflags[i] !== ' ' && makeflags[i] !== '\t') {
      if (makeflags[i] === '\\' && i + 1 < n) i++;
      w += makeflags[i];
      i++;
    }
    if (w === '--') break;
    words.push(w);
  }
  return words;
}

export type JobserverAuth =
  | { style: 'fds'; read: number; write: number }
  | { style: 'fifo'; path: string }
  | { style: 'other'; value: string };

/**
 * The LAST `--jobserver-auth=` (or older `--jobserver-fds=`) in MAKEFLAGS,
 * or null when there is none.
 */
export function parseJobserverAuth(makeflags: string | undefined): JobserverAuth | null {
  if (!makeflags) return null;
  let value: string | null = null;
  for (const w of makeflagsWords(makeflags)) {
    if (w.startsWith('--jobserver-auth=')) value = w.slice('--jobserver-auth='.length);
    else if (w.startsWith('--jobserver-fds=')) value = w.slice('--jobserver-fds='.length);
  }
  if (value === null) return null;
  const m = /^(-?\d+),(-?\d+)$/.exec(value);
  if (m) return { style: 'fds', read: Number(m[1]), write: Number(m[2]) };
  if (value.startsWith('fifo:')) return { style: 'fifo', path: value.slice(5) };
  return { style: 'other', value };
}

const BOUNDARY = new Set([
  ' ',
  '\t',
  '\n',
  '\r',
  '\v',
  '\f',
  '/',
  "'",
  '"',
  ';',
  '&',
  '|',
  '(',
  ')',
]);

/**
 * Whether `word` occurs in `line` bounded on both sides by the start/end,
 * whitespace, '/', quotes, ';', '&', '|', '(' or ')'. ("make", "/usr/bin/make",
 * "(cd x && make)" match; "cmake", "make.sh", "makefile" do not.)
 */
export function containsWord(line: string, word: string): boolean {
  if (word.length === 0) return false;
  for (let p = line.indexOf(word); p >= 0; p = line.indexOf(word, p + 1)) {
    const before = p === 0 ? '' : line[p - 1]!;
    const after = p + word.length >= line.length ? '' : line[p + word.length]!;
    if ((before === '' || BOUNDARY.has(before)) && (after === '' || BOUNDARY.has(after))) {
      return true;
    }
  }
  return false;
}

/**
 * MPMAKE_LOCAL: the line's first word (after leading blanks) is on the
 * space-separated list, and the line has none of ; | & ` newline $( .
 * Redirections are allowed. An empty list keeps nothing local.
 */
export function isLocalCommand(line: string, localList: string | undefined): boolean {
  if (!localList) return false;
  if (/[;|&`\n]/.test(line) || line.includes('$(')) return false;
  const first = /^[ \t]*([^ \t\r\v\f]+)/.exec(line)?.[1];
  if (!first) return false;
  return localList.split(/[ \t]+/).includes(first);
}

/** What `decide` needs from the operating system. */
export interface ShimProbes {
  /** /proc/<pid>/comm without the newline, or null. */
  comm(pid: number): string | null;
  /** fd 1 is a pipe whose read end `ppid` holds (a `$(shell)` call). */
  stdoutIsShellFunctionPipe(ppid: number): boolean;
  /** fd `fd` is open in this process, is a FIFO, and is make's own fd `fd`. */
  inheritedFifo(fd: number, ppid: number): boolean;
}

/**
 * A recursive make line: with an `R,W` jobserver (and no
 * MPMAKE_JOBSERVER_TEXTUAL=1), make passes the fds only to recursive lines,
 * so the line is recursive iff fd R reached us. Otherwise (fifo: style, no
 * jobserver, or make leaks the fds) the line names make as a word.
 */
export function isRecursiveLine(
  line: string,
  env: ShimEnv,
  ppid: number,
  probes: Pick<ShimProbes, 'inheritedFifo'>,
): boolean {
  // A nested mpmake is a sub-make too: it must run here, where it finds
  // this build's coordinator and pool, whether or not make marked it.
  if (containsWord(line, 'mpmake') || line.includes('/mpmake.js')) return true;
  const auth = parseJobserverAuth(env.MAKEFLAGS);
  if (env.MPMAKE_JOBSERVER_TEXTUAL !== '1' && auth?.style === 'fds' && auth.read >= 0) {
    return probes.inheritedFifo(auth.read, ppid);
  }
  return containsWord(line, makeName(env));
}

/** The whole decision, in the shim's order. `argv` includes argv[0]. */
export function decide(
  argv: readonly string[],
  env: ShimEnv,
  ppid: number,
  probes: ShimProbes = procProbes,
): Decision {
  if (!env.MPMAKE_SOCK) return { where: 'local', reason: 'no-coordinator' };
  if (!isDashC(argv)) return { where: 'local', reason: 'not-dash-c' };
  const comm = probes.comm(ppid);
  if (comm === null || !commIsMake(comm, makeName(env))) {
    return { where: 'local', reason: 'parent-not-make' };
  }
  if (probes.stdoutIsShellFunctionPipe(ppid)) return { where: 'local', reason: 'shell-function' };
  const line = argv[argv.length - 1]!;
  if (isRecursiveLine(line, env, ppid, probes)) return { where: 'local', reason: 'recursive-make' };
  if (isLocalCommand(line, env.MPMAKE_LOCAL)) return { where: 'local', reason: 'local-list' };
  return { where: 'coordinator' };
}

/** The O_ACCMODE bits of an octal "flags:" line in /proc/<pid>/fdinfo/<fd>. */
export function fdinfoAccessMode(fdinfo: string): number | null {
  const m = /^flags:\s*([0-7]+)/m.exec(fdinfo);
  return m ? parseInt(m[1]!, 8) & 3 : null;
}

/** The real probes, reading /proc (Linux). */
export const procProbes: ShimProbes = {
  comm(pid: number): string | null {
    try {
      return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').replace(/\n$/, '');
    } catch {
      return null;
    }
  },

  stdoutIsShellFunctionPipe(ppid: number): boolean {
    let out: fs.Stats;
    try {
      out = fs.fstatSync(1);
      if (!out.isFIFO()) return false;
    } catch {
      return false;
    }
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${ppid}/fd`);
    } catch {
      return false;
    }
    for (const fd of fds) {
      try {
        // stat follows the fd link to the pipe ("pipe:[ino]") or named FIFO
        const st = fs.statSync(`/proc/${ppid}/fd/${fd}`);
        if (st.ino !== out.ino || st.dev !== out.dev) continue;
        const mode = fdinfoAccessMode(fs.readFileSync(`/proc/${ppid}/fdinfo/${fd}`, 'utf8'));
        if (mode === fs.constants.O_RDONLY) return true;
      } catch {
        // the fd closed meanwhile
      }
    }
    return false;
  },

  inheritedFifo(fd: number, ppid: number): boolean {
    // Node opens pipes of its own at start-up (libuv's signal pipe), which may
    // take the number of a jobserver fd make did not pass, so compare with
    // make's fd of that number.
    try {
      const mine = fs.fstatSync(fd);
      if (!mine.isFIFO()) return false;
      const makes = fs.statSync(`/proc/${ppid}/fd/${fd}`);
      return mine.dev === makes.dev && mine.ino === makes.ino;
    } catch {
      return false;
    }
  },
};

/**
 * The fds above 2 that this process got from `ppid` (the same open file as
 * the parent's fd of that number). Node marks every inherited fd
 * close-on-exec at start-up and opens fds of its own, so the fallback shim
 * hands these to the real shell explicitly (the jobserver fds of a
 * recursive line, a `make 3>log` fd).
 */
export function inheritedFds(ppid: number): number[] {
  let names: string[];
  try {
    names = fs.readdirSync('/proc/self/fd');
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const name of names) {
    const fd = Number(name);
    if (!Number.isInteger(fd) || fd < 3) continue;
    try {
      const mine = fs.fstatSync(fd);
      const theirs = fs.statSync(`/proc/${ppid}/fd/${fd}`);
      if (mine.dev === theirs.dev && mine.ino === theirs.ino) out.push(fd);
    } catch {
      // not open in the parent, or closed meanwhile (readdir's own fd)
    }
  }
  return out.sort((a, b) => a - b);
}

/** Signals the shim traps while a job runs remotely. */
export const TRAPPED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const;
export type TrappedSignal = (typeof TRAPPED_SIGNALS)[number];

/** The umask from /proc/self/status "Umask:" (octal), or null. */
export function parseUmask(status: string): number | null {
  const m = /^Umask:\s*([0-7]+)/m.exec(status);
  return m ? parseInt(m[1]!, 8) : null;
}
