import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { TtySize, WireText } from '../protocol/messages.js';
import { packageRoot } from './package-root.js';
import type { RunAs } from './run-as.js';

/** The shell that applies the job's umask (Node cannot set a child's umask). */
export const WRAPPER_SHELL = '/bin/sh';

/** What the wrapper shell calls itself ($0) in its error messages. */
const WRAPPER_NAME = 'mpm-job';

/** Prefix of the variables that carry non-UTF-8 environment values to the wrapper. */
const BYTES_ENV_PREFIX = 'MPM_JOB_BYTES_';

/** An environment variable name the shell can `export`. */
export const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A job as the agent received it, reduced to what starting it needs. */
export interface JobRequest {
  argv: WireText[];
  cwd: string;
  env: Record<string, WireText>;
  umask: number;
  tty?: TtySize | undefined;
  mergeOutput?: boolean | undefined;
  /** The launcher's lease (`PATH:SLOT`, lease.h) and the job's target, when known. */
  lease?: string | undefined;
  target?: string | undefined;
}

/** What to spawn: the wrapper shell with string-only arguments and environment. */
export interface JobCommand {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  tty: TtySize | undefined;
  /**
   * The job's environment for a launcher that drops to another user:
   * NUL-terminated NAME=VALUE entries, never in argv (any local user can
   * read argv). `args[argIndex]` says where the launcher reads it from:
   * ENV_FROM_FD (a pipe on fd 3) as built; a pty job, which gets no extra
   * descriptor, swaps in `file:PATH` (envFromFile).
   */
  envInput?: { block: Buffer; argIndex: number };
}

/** The launcher reads a job's environment from this descriptor (a pipe). */
export const ENV_FD = 3;
export const ENV_FROM_FD = `fd:${ENV_FD}`;

/**
 * A byte string as a printf(1) format that prints exactly those bytes:
 * printable ASCII as is (so a long line stays short), everything else as
 * \NNN octal. The result is ASCII, so it survives Node's UTF-8 encoding of
 * arguments and environment.
 */
export function printfFormat(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) {
    if (b === 0x25) out += '%%';
    else if (b === 0x5c) out += '\\\\';
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\${b.toString(8).padStart(3, '0')}`;
  }
  return out;
}

/**
 * The command line that runs a job's argv exactly as given:
 * `/bin/sh -c 'umask 0NNN; exec "$@"' mpm-job argv...`. argv is never
 * re-quoted: it travels as separate arguments to `exec "$@"`.
 *
 * - Under a pseudo-terminal the wrapper first turns off the tty's NL->CRLF
 *   mapping (the client's terminal does that itself), and the job's stdin
 *   is /dev/null, as on pipes: nobody types into a remote job.
 * - With mergeOutput, stderr goes into the stdout pipe, keeping their order.
 * - Node passes only UTF-8 strings to exec, so an argument or environment
 *   value that came as raw bytes goes to the wrapper as a printf format,
 *   and the wrapper turns it back into those bytes before exec.
 */
export function buildJobCommand(
  job: JobRequest,
  runAs?: RunAs,
  roots: readonly string[] = [],
): JobCommand {
  const launcher = nativeLauncher();
  if (runAs !== undefined) {
    // Only the launcher can drop to a user with its groups (checked at start).
    if (launcher === undefined) throw new Error('--user needs build/mpmake-exec');
    return launcherCommand(launcher, job, runAs, roots);
  }
  return launcher ? launcherCommand(launcher, job, undefined, roots) : shellCommand(job);
}

/** The launcher's ROOTS argument: "-" when any directory will do. */
export function rootsArg(roots: readonly string[]): string {
  if (roots.length === 0 || roots.includes('/')) return '-';
  return roots.map((r) => Buffer.from(r).toString('hex')).join(',');
}

/** The launcher's CREDS argument: uid, gid and groups ("*": initgroups there). */
export function credsArg(runAs: RunAs): string {
  const groups = runAs.initgroups ? '*' : runAs.groups.join(',');
  return `${runAs.uid}:${runAs.gid}:${groups}`;
}

/** NAME=VALUE entries, each ending in NUL, raw bytes as they came. */
export function envBlock(env: Record<string, WireText>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(env)) {
    parts.push(Buffer.from(`${name}=`), Buffer.from(value), Buffer.alloc(1));
  }
  return Buffer.concat(parts);
}

/** The launcher's lease and target settings (read and removed by job-exec.c). */
function supervisorEnv(job: JobRequest): Record<string, string> {
  const env: Record<string, string> = {};
  if (job.lease !== undefined) env['MPMAKE_EXEC_LEASE'] = job.lease;
  if (job.target !== undefined) env['MPMAKE_EXEC_TARGET'] = job.target;
  return env;
}

let launcherPath: string | null | undefined;

/** build/mpmake-exec, when it was built (`make build`); else the shell wrapper is used. */
export function nativeLauncher(): string | undefined {
  if (launcherPath === undefined) {
    const p = join(packageRoot(), 'build', 'mpmake-exec');
    launcherPath = process.env['MPMAKE_NO_NATIVE_EXEC'] !== '1' && existsSync(p) ? p : null;
  }
  return launcherPath ?? undefined;
}

/**
 * The job under build/mpmake-exec (lib/agent/job-exec.c): one small exec
 * that sets the umask, merges stderr into stdout, turns off the pty's
 * NL->CRLF mapping, decodes arguments and environment values that came as
 * raw bytes (sent hex-encoded), and then supervises the job, killing its
 * process group if the agent dies.
 *
 * With `runAs` (flag u) the launcher starts as root and drops to that
 * user's uid, gid and groups before anything of the job's runs. It must
 * not be exec'd with the client's environment then: the dynamic loader
 * would honour LD_PRELOAD and friends while it is still root. So it gets
 * an empty environment, and the job's comes through a descriptor
 * (`envInput`), set only once root is gone. The launcher checks the
 * working directory against `roots` once it is in it, as the job's user.
 */
export function launcherCommand(
  launcher: string,
  job: JobRequest,
  runAs?: RunAs,
  roots: readonly string[] = [],
): JobCommand {
  const tty = job.tty !== undefined;
  const mask = (job.umask & 0o777).toString(8).padStart(3, '0');
  const flags = (job.mergeOutput && !tty ? 'm' : '') + (tty ? 't' : '') + (runAs ? 'u' : '') || '-';
  const hexArgs: number[] = [];
  const argv = job.argv.map((a, i) => {
    if (typeof a === 'string') return a;
    hexArgs.push(i);
    return Buffer.from(a).toString('hex');
  });
  const head = [mask, flags, hexArgs.length ? hexArgs.join(',') : '-', rootsArg(roots)];
  if (runAs) {
    return {
      file: launcher,
      args: [...head, credsArg(runAs), ENV_FROM_FD, '--', ...argv],
      cwd: job.cwd,
      // Nothing of the client's: only the supervisor's own settings.
      env: supervisorEnv(job),
      tty: job.tty,
      envInput: { block: envBlock(job.env), argIndex: head.length + 1 },
    };
  }
  const env: Record<string, string> = {};
  const hexEnv: string[] = [];
  for (const [name, value] of Object.entries(job.env)) {
    if (typeof value === 'string') env[name] = value;
    else {
      env[name] = Buffer.from(value).toString('hex');
      hexEnv.push(name);
    }
  }
  if (hexEnv.length) env['MPMAKE_EXEC_HEXENV'] = hexEnv.join(',');
  // Only ours: a client's own values must not steer the supervisor.
  delete env['MPMAKE_EXEC_LEASE'];
  delete env['MPMAKE_EXEC_TARGET'];
  Object.assign(env, supervisorEnv(job));
  return { file: launcher, args: [...head, '--', ...argv], cwd: job.cwd, env, tty: job.tty };
}

/** The job under the `/bin/sh` wrapper, where mpmake-exec was not built. */
export function shellCommand(job: JobRequest): JobCommand {
  const tty = job.tty !== undefined;
  const mask = `0${(job.umask & 0o777).toString(8).padStart(3, '0')}`;
  const env: Record<string, string> = {};
  const script: string[] = [];
  if (job.mergeOutput && !tty) script.push('exec 2>&1');
  if (tty) script.push('stty -onlcr 2>/dev/null');
  script.push(`umask ${mask}`);

  let bytesEnv = 0;
  for (const [name, value] of Object.entries(job.env)) {
    if (typeof value === 'string') {
      env[name] = value;
      continue;
    }
    // jobRefusal() has checked that `name` is a shell name.
    const carrier = `${BYTES_ENV_PREFIX}${bytesEnv++}`;
    env[carrier] = printfFormat(value);
    script.push(
      `mpm_v=$(printf "$${carrier}"; echo .); ${name}=\${mpm_v%.}; export ${name}; unset ${carrier}`,
    );
  }

  let args: string[];
  if (job.argv.every((a): a is string => typeof a === 'string')) {
    args = job.argv;
  } else {
    const kinds = job.argv.map((a) => (typeof a === 'string' ? 's' : 'b')).join('');
    args = [kinds, ...job.argv.map((a) => (typeof a === 'string' ? a : printfFormat(a)))];
    // Rebuild "$@", decoding the arguments marked b. `for` walks the list
    // as it was; each turn moves one argument from the front to the back.
    script.push(
      'mpm_k=$1; shift; for mpm_a do shift; case $mpm_k in b*) ' +
        'mpm_a=$(printf "$mpm_a"; echo .); mpm_a=${mpm_a%.};; esac; ' +
        'mpm_k=${mpm_k#?}; set -- "$@" "$mpm_a"; done',
    );
  }
  if (bytesEnv > 0 || args !== job.argv) script.push('unset mpm_v mpm_a mpm_k');
  script.push(tty ? 'exec "$@" </dev/null' : 'exec "$@"');
  return {
    file: WRAPPER_SHELL,
    args: ['-c', script.join('; '), WRAPPER_NAME, ...args],
    cwd: job.cwd,
    env,
    tty: job.tty,
  };
}
