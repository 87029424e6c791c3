import { accessSync, constants, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, delimiter, isAbsolute, join } from 'node:path';

/**
 * What make is told it was called as (its argv[0]): the command the user
 * typed, so `$(MAKE)`, MAKE_COMMAND and make's own `name:` prefix in its
 * messages are what a drop-in make would give.
 *
 * - A wrapper that runs mpmake with `exec -a "$0" node …/mpmake.js` (or any
 *   argv[0] other than Node's) names itself: used as it is.
 * - Otherwise the script Node runs (`mpmake` on PATH, via npm link): its
 *   bare name when PATH finds that same file under it (as if typed
 *   `mpmake`), else its path.
 */
export function typedCommand(
  argv0: string = process.argv0,
  script: string | undefined = process.argv[1],
  execPath: string = process.execPath,
  path: string | undefined = process.env['PATH'],
): string | undefined {
  const nodeNames = new Set(['node', 'nodejs', basename(execPath)]);
  if (argv0 !== '' && !nodeNames.has(basename(argv0)) && argv0 !== execPath) return argv0;
  if (script === undefined || !isAbsolute(script) || !isExecutable(script)) return undefined;
  const name = basename(script);
  const found = onPath(name, path);
  if (found !== undefined && sameFile(found, script)) return name;
  return script;
}

function isExecutable(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string, path: string | undefined): string | undefined {
  for (const dir of (path ?? '').split(delimiter)) {
    if (dir === '') continue;
    const p = join(dir, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

function sameFile(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

/** The private variables (`__MPMAKE_*`) that connect a make to its build. */
export type BuildLink = Record<string, string>;

/**
 * The build this process runs under, if any: mpmake run by a recipe (or by
 * a script a recipe runs) must reuse the outer coordinator. Nothing about
 * it is in our environment (recipes see none of mpmake's variables); the
 * make the outer mpmake started, or the shell the shim ran for a recursive
 * line, got them at exec, and /proc/PID/environ still holds the environment
 * a process was started with. So walk up our ancestors and take the first
 * one that has them, with a coordinator socket that still exists.
 */
export function findOuterBuild(
  startPid: number = process.ppid,
  exists: (p: string) => boolean = socketExists,
): BuildLink | undefined {
  let pid = startPid;
  for (let depth = 0; depth < 64 && pid > 1; depth++) {
    const link = linkOf(pid);
    if (link !== undefined && link['__MPMAKE_SOCK'] && exists(link['__MPMAKE_SOCK'])) return link;
    const parent = parentOf(pid);
    if (parent === undefined || parent === pid) return undefined;
    pid = parent;
  }
  return undefined;
}

function linkOf(pid: number): BuildLink | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/environ`, 'latin1');
  } catch {
    return undefined;
  }
  let link: BuildLink | undefined;
  for (const entry of text.split('\0')) {
    if (!entry.startsWith('__MPMAKE_')) continue;
    const eq = entry.indexOf('=');
    if (eq < 0) continue;
    link ??= {};
    link[entry.slice(0, eq)] = Buffer.from(entry.slice(eq + 1), 'latin1').toString('utf8');
  }
  return link;
}

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state ppid ...; comm may hold spaces and parentheses
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(rest[1]);
    return Number.isInteger(ppid) ? ppid : undefined;
  } catch {
    return undefined;
  }
}

function socketExists(p: string): boolean {
  try {
    return statSync(p).isSocket();
  } catch {
    return false;
  }
}
