import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';

/**
 * Finds the shell a makefile asks for. mpmake must give make
 * `SHELL=<shim>` on its command line (so every recipe line reaches the shim
 * and sub-makes inherit it), and a command-line variable beats the
 * makefile's own `SHELL := /bin/bash`: make forgets that value. So we read
 * it from the makefile's text ourselves, following literal includes. A value
 * that needs make to expand it (`$(shell which bash)`) cannot be read this
 * way: the caller warns once and uses /bin/sh.
 */
export interface IntendedShell {
  shell: string;
  /** Set when an assignment was found but could not be evaluated. */
  unresolved?: string;
  /** Target-specific (`t: SHELL := …`) and pattern-specific (`%.o: SHELL = …`) shells. */
  perTarget?: TargetShell[];
}

export interface TargetShell {
  /** A target name, or a pattern with one `%`. */
  target: string;
  shell: string;
}

/** The shell for `target`: its own, else the first matching pattern's, else the global one. */
export function shellForTarget(found: IntendedShell, target: string | undefined): string {
  if (target && found.perTarget) {
    const exact = found.perTarget.find((p) => p.target === target);
    if (exact) return exact.shell;
    for (const p of found.perTarget) {
      const pct = p.target.indexOf('%');
      if (pct < 0) continue;
      const [pre, post] = [p.target.slice(0, pct), p.target.slice(pct + 1)];
      if (
        target.length >= pre.length + post.length &&
        target.startsWith(pre) &&
        target.endsWith(post)
      ) {
        return p.shell;
      }
    }
  }
  return found.shell;
}

const DEFAULT_MAKEFILES = ['GNUmakefile', 'makefile', 'Makefile'];
const ASSIGN = /^\s*(?:override\s+)?(?:export\s+)?SHELL\s*(::=|:::=|:=|\?=|\+=|!=|=)\s*(.*?)\s*$/;
const INCLUDE = /^\s*(?:-include|sinclude|include)\s+(.+?)\s*$/;
const TARGET_ASSIGN =
  /^([^:=#\t$][^:=#$]*?)\s*:\s*(?:override\s+|export\s+|private\s+)*SHELL\s*(::=|:=|\?=|=)\s*(.*?)\s*$/;

export function intendedShell(cwd: string, makefiles: readonly string[]): IntendedShell {
  const files = makefiles.length
    ? makefiles.map((f) => resolve(cwd, f))
    : DEFAULT_MAKEFILES.map((f) => join(cwd, f))
        .filter((f) => existsSync(f))
        .slice(0, 1);
  const state: IntendedShell & { set: boolean } = { shell: '/bin/sh', set: false, perTarget: [] };
  const visited = new Set<string>();
  for (const f of files) scan(f, cwd, state, visited, 0);
  const result: IntendedShell = { shell: state.shell };
  if (state.unresolved !== undefined) result.unresolved = state.unresolved;
  if (state.perTarget?.length) result.perTarget = state.perTarget;
  return result;
}

function scan(
  file: string,
  cwd: string,
  state: IntendedShell & { set: boolean },
  visited: Set<string>,
  depth: number,
): void {
  if (visited.has(file) || depth > 16) return;
  visited.add(file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return;
  }
  // Join backslash-continued lines; recipe lines (tab first) never assign SHELL.
  const lines = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/);
  for (const line of lines) {
    if (line.startsWith('\t')) continue;
    const uncommented = line.replace(/(^|[^\\])#.*$/, '$1');
    const inc = INCLUDE.exec(uncommented);
    if (inc) {
      for (const name of inc[1]!.split(/\s+/)) {
        if (name.includes('$')) continue;
        scan(isAbsolute(name) ? name : join(cwd, name), cwd, state, visited, depth + 1);
      }
      continue;
    }
    const ts = TARGET_ASSIGN.exec(uncommented);
    if (ts) {
      const value = ts[3]!;
      if (value.includes('$')) state.unresolved = `${file}: ${ts[1]}: SHELL ${ts[2]} ${value}`;
      else if (value) {
        for (const target of ts[1]!.split(/\s+/).filter(Boolean))
          state.perTarget!.push({ target, shell: value });
      }
      continue;
    }
    const m = ASSIGN.exec(uncommented);
    if (!m) continue;
    const op = m[1]!;
    const value = m[2]!;
    if (op === '?=' && state.set) continue;
    if (op === '+=' || op === '!=' || value.includes('$')) {
      state.unresolved = `${file}: SHELL ${op} ${value}`;
      continue;
    }
    if (value === '') continue;
    state.shell = value;
    state.set = true;
    delete state.unresolved;
  }
}

/**
 * The -C directories and -f files in make's arguments. `cwd` is where make
 * starts; the result's `cwd` is where it reads its makefile.
 */
export function makefileArgs(
  argv: readonly string[],
  cwd: string,
): { cwd: string; makefiles: string[] } {
  const makefiles: string[] = [];
  let dir = cwd;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    const long = /^--(file|makefile|directory)=(.*)$/.exec(a);
    if (long) {
      if (long[1] === 'directory') dir = resolve(dir, long[2]!);
      else makefiles.push(long[2]!);
    } else if (a === '-f' || a === '--file' || a === '--makefile') {
      if (argv[i + 1] !== undefined) makefiles.push(argv[++i]!);
    } else if (a === '-C' || a === '--directory') {
      if (argv[i + 1] !== undefined) dir = resolve(dir, argv[++i]!);
    } else if (a.startsWith('-f')) {
      makefiles.push(a.slice(2));
    } else if (a.startsWith('-C')) {
      dir = resolve(dir, a.slice(2));
    }
  }
  return { cwd: dir, makefiles };
}

/**
 * The directory and -f files of a running make, read from /proc, so the
 * coordinator can find the intended shell of a sub-make it never started
 * (make has already applied its -C options to its cwd).
 */
export function makeProcessFacts(pid: number): { cwd: string; makefiles: string[] } | undefined {
  try {
    const cwd = readlinkSync(`/proc/${pid}/cwd`);
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(1);
    const noDirs = argv.filter(
      (a, i) => !(a.startsWith('-C') || a.startsWith('--directory') || argv[i - 1] === '-C'),
    );
    return { cwd, makefiles: makefileArgs(noDirs, cwd).makefiles };
  } catch {
    return undefined;
  }
}
