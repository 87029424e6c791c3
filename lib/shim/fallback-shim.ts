/**
 * The TypeScript fallback for the native shim (shim.c), used where no C
 * compiler works. Same decisions (local-decision.ts), same protocol
 * (shim-protocol.ts); about 100 ms of CPU per recipe line instead of ~1 ms.
 *
 * This module is an entry point: importing it runs the shim on
 * process.argv. installShim() starts it through a tiny launcher named `sh`.
 *
 * Differences from the native shim, all forced by Node:
 *   - Node cannot exec(): a local line runs as a child (stdio inherited),
 *     and the shim exits with its status or dies by its signal; INT, TERM,
 *     HUP and QUIT received meanwhile are forwarded to the child.
 *   - Node resets signal dispositions at start-up, so a signal that was
 *     ignored when make started the shim (nohup) is not ignored for the
 *     shell either.
 *   - argv and environment are decoded as UTF-8 (invalid bytes are replaced).
 *   - The terminal size comes from fd 1 or 2 only (not fd 0).
 *   - Node marks inherited fds close-on-exec; a local line gets fds 0-2 and
 *     those fds above 2 that the parent process holds under the same number
 *     (make's jobserver fds for a recursive line).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tty from 'node:tty';
import {
  SHIM_FLAG_STDERR_TTY,
  SHIM_FLAG_SAME_OUTPUT,
  SHIM_FLAG_STDOUT_TTY,
  ShimFrame,
  ShimFrameReader,
  cancelFrame,
  decodeExpect,
  encodeRequest,
  encodeWrote,
  freshFrame,
  resizeFrame,
  staleWarning,
} from './shim-protocol.js';
import { plainWait } from '../agent/file-seen.js';
import {
  TRAPPED_SIGNALS,
  decide,
  inheritedFds,
  parseUmask,
  realShell,
  type ShimEnv,
  type TrappedSignal,
} from './local-decision.js';

const SIGNALS = os.constants.signals as Readonly<Record<string, number>>;
const SIGPIPE = SIGNALS.SIGPIPE ?? 13;

/** Signals whose default action is not to terminate. */
const NOT_TERMINATING = new Set(
  ['SIGSTOP', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU', 'SIGCONT', 'SIGCHLD', 'SIGURG', 'SIGWINCH'].map(
    (s) => SIGNALS[s],
  ),
);

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  ENOEXEC: 'Exec format error',
  ENOTDIR: 'Not a directory',
  ECONNREFUSED: 'Connection refused',
  ECONNRESET: 'Connection reset by peer',
  ENAMETOOLONG: 'File name too long',
  EPIPE: 'Broken pipe',
  ENOSPC: 'No space left on device',
  EIO: 'Input/output error',
  EBADF: 'Bad file descriptor',
  ELOOP: 'Too many levels of symbolic links',
  EAGAIN: 'Resource temporarily unavailable',
};

function errText(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  if (e?.code && ERRNO_TEXT[e.code]) return ERRNO_TEXT[e.code]!;
  if (e?.code) return e.code;
  return e instanceof Error ? e.message : String(err);
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** For our own messages: whole writes, EAGAIN waited out. */
function say(msg: string): void {
  const buf = Buffer.from(msg);
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(2, buf, off, buf.length - off);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN' || code === 'EINTR') {
        if (code === 'EAGAIN') sleepMs(1);
        continue;
      }
      return;
    }
  }
}

function signalName(signo: number): string | undefined {
  return Object.keys(SIGNALS).find((k) => SIGNALS[k] === signo);
}

let trapListener: ((sig: NodeJS.Signals) => void) | null = null;

function untrapSignals(): void {
  if (trapListener) for (const s of TRAPPED_SIGNALS) process.removeListener(s, trapListener);
  trapListener = null;
}

function trapSignals(listener: (sig: NodeJS.Signals) => void): void {
  untrapSignals();
  trapListener = listener;
  for (const s of TRAPPED_SIGNALS) process.on(s, listener);
}

/** Dies by `signo` as the shell would have; exits 128+signo if it cannot. */
function dieBySignal(signo: number): void {
  untrapSignals();
  process.exitCode = 128 + (signo & 127);
  const name = signalName(signo);
  if (!name || NOT_TERMINATING.has(signo) || name === 'SIGKILL' || name === 'SIGSTOP') {
    if (name === 'SIGKILL') process.kill(process.pid, 'SIGKILL');
    return;
  }
  // Node ignores SIGPIPE/SIGXFSZ; removing the last listener resets the
  // disposition to the default one.
  const noop = (): void => {};
  process.on(name as NodeJS.Signals, noop);
  process.removeAllListeners(name);
  process.kill(process.pid, name as NodeJS.Signals);
}

/** Runs the real shell as a child and ends as it ended. */
function runShell(shell: string, args: readonly string[]): void {
  // fds 0-2, and the fds make passed (Node made them close-on-exec)
  const stdio: Array<'inherit' | 'ignore' | number> = ['inherit', 'inherit', 'inherit'];
  for (const fd of inheritedFds(process.ppid)) {
    while (stdio.length < fd) stdio.push('ignore');
    stdio[fd] = fd;
  }
  const child = spawn(shell, args, { stdio, argv0: shell });
  trapSignals((sig) => {
    try {
      child.kill(sig);
    } catch {
      // already gone
    }
  });
  let failed = false;
  child.on('error', (err) => {
    failed = true;
    untrapSignals();
    say(`mpmake: cannot run ${shell}: ${errText(err)}\n`);
    process.exitCode = 127;
  });
  child.on('exit', (code, signal) => {
    if (failed) return;
    untrapSignals();
    if (signal) dieBySignal(SIGNALS[signal] ?? 15);
    else process.exitCode = code ?? 127;
  });
}

function readUmask(): number {
  try {
    const m = parseUmask(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m !== null) return m;
  } catch {
    // no /proc: fall through
  }
  return process.umask();
}

function terminalFacts(): {
  flags: number;
  cols: number;
  rows: number;
  term: tty.WriteStream | null;
} {
  let flags = 0;
  let cols = 0;
  let rows = 0;
  const out = tty.isatty(1);
  const err = tty.isatty(2);
  if (out) flags |= SHIM_FLAG_STDOUT_TTY;
  if (err) flags |= SHIM_FLAG_STDERR_TTY;
  try {
    const [a, b] = [fs.fstatSync(1), fs.fstatSync(2)];
    if (a.dev === b.dev && a.ino === b.ino) flags |= SHIM_FLAG_SAME_OUTPUT;
  } catch {
    // a closed fd: not the same file
  }
  const stream = out ? process.stdout : err ? process.stderr : null;
  if (stream && 'columns' in stream) {
    cols = (stream as tty.WriteStream).columns ?? 0;
    rows = (stream as tty.WriteStream).rows ?? 0;
  }
  const term = stream && 'columns' in stream ? (stream as tty.WriteStream) : null;
  return { flags, cols: cols & 0xffff, rows: rows & 0xffff, term };
}

type Action =
  | { kind: 'out'; fd: 1 | 2; buf: Buffer }
  | { kind: 'exit'; code: number; signal: number }
  | { kind: 'local'; shell: string }
  | { kind: 'lost'; reason: string };

const HIGH_WATER = 1 << 20;

function lostMessage(sockPath: string, reason: string): string {
  return `mpmake: lost the coordinator (MPMAKE_SOCK=${sockPath}): ${reason}; is mpmake still running?\n`;
}

function runRemote(sockPath: string, cwd: string, argv: readonly string[], env: ShimEnv): void {
  let gotSignal = 0;
  let dieSignal = 0;
  let cancelSent = false;
  let requestSent = false;
  let ended = false;
  let outBroken = false;
  const outFailed = { 1: false, 2: false };
  const queue: Action[] = [];
  let queuedBytes = 0;
  let busy = false;
  let paused = false;
  let closeReason: string | null = null;
  let expected: ReturnType<typeof decodeExpect> | undefined;

  // A socket path too long for sockaddr_un is reached through its directory.
  let connectPath = sockPath;
  let dirFd: number | null = null;
  if (Buffer.byteLength(sockPath) >= 108) {
    try {
      dirFd = fs.openSync(path.dirname(sockPath), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
      connectPath = `/proc/self/fd/${dirFd}/${path.basename(sockPath)}`;
    } catch (err) {
      say(lostMessage(sockPath, `socket directory: ${errText(err)}`));
      process.exitCode = 127;
      return;
    }
  }
  const sock = net.createConnection({ path: connectPath });
  const reader = new ShimFrameReader();

  let unwatchSize = (): void => {};

  function finish(): void {
    ended = true;
    untrapSignals();
    unwatchSize();
    sock.destroy();
    if (dirFd !== null) {
      fs.closeSync(dirFd);
      dirFd = null;
    }
  }

  function lost(reason: string): void {
    if (ended) return;
    finish();
    if (dieSignal) return dieBySignal(dieSignal);
    say(lostMessage(sockPath, reason));
    process.exitCode = 127;
  }

  function sendCancel(): void {
    if (cancelSent || !requestSent || ended) return;
    cancelSent = true;
    sock.write(cancelFrame(dieSignal));
  }

  function noteSignals(): void {
    if (gotSignal && !dieSignal) dieSignal = gotSignal;
    if (dieSignal) sendCancel();
  }

  trapSignals((sig: TrappedSignal | NodeJS.Signals) => {
    if (!gotSignal) gotSignal = SIGNALS[sig] ?? 0;
    if (!requestSent) {
      // nothing has started remotely
      finish();
      dieBySignal(gotSignal);
      return;
    }
    noteSignals();
  });

  function writeOut(fd: 1 | 2, buf: Buffer, off: number, done: () => void): void {
    if (outBroken || outFailed[fd]) return done();
    fs.write(fd, buf, off, buf.length - off, null, (err, n) => {
      if (err) {
        if (err.code === 'EAGAIN' || err.code === 'EINTR') {
          setTimeout(() => writeOut(fd, buf, off, done), err.code === 'EAGAIN' ? 2 : 0);
          return;
        }
        if (err.code === 'EPIPE') {
          outBroken = true;
          if (!dieSignal) dieSignal = SIGPIPE;
          sendCancel();
        } else {
          outFailed[fd] = true;
          if (fd !== 2) say(`mpmake: cannot write the job's output to fd ${fd}: ${errText(err)}\n`);
        }
        return done();
      }
      if (off + n < buf.length) writeOut(fd, buf, off + n, done);
      else done();
    });
  }

  function pump(): void {
    while (!busy && !ended) {
      const a = queue.shift();
      if (!a) {
        if (paused) {
          paused = false;
          sock.resume();
        }
        return;
      }
      switch (a.kind) {
        case 'out':
          busy = true;
          writeOut(a.fd, a.buf, 0, () => {
            busy = false;
            queuedBytes -= a.buf.length;
            pump();
          });
          break;
        case 'exit': {
          noteSignals();
          const x = expected;
          if (x && a.code === 0 && a.signal <= 0 && !dieSignal) {
            // Before make sees the success: wait until the targets look here
            // as the node saw them (plain stat after opening the directory).
            expected = undefined;
            busy = true;
            void plainWait(x.files, x.waitMs).then((r) => {
              sock.write(freshFrame(r));
              for (const p of r.stale) {
                say(staleWarning(p, x.from, r.lagMs, x.waitMs, !fs.existsSync(p)));
              }
              busy = false;
              queue.unshift({ ...a, code: r.stale.length > 0 ? 127 : a.code });
              pump();
            });
            return;
          }
          finish();
          if (dieSignal) return dieBySignal(dieSignal);
          if (a.signal > 0) return dieBySignal(a.signal);
          let code = a.code;
          if (code === 0 && (outFailed[1] || outFailed[2])) code = 1;
          process.exitCode = code & 0xff;
          return;
        }
        case 'local':
          noteSignals();
          finish();
          if (dieSignal) return dieBySignal(dieSignal);
          return runShell(a.shell || realShell(env), argv.slice(1));
        case 'lost':
          return lost(a.reason);
      }
    }
  }

  function enqueue(a: Action): void {
    queue.push(a);
    if (a.kind === 'out') {
      queuedBytes += a.buf.length;
      if (queuedBytes > HIGH_WATER && !paused) {
        paused = true;
        sock.pause();
      }
    }
    pump();
  }

  sock.on('connect', () => {
    if (dirFd !== null) {
      fs.closeSync(dirFd);
      dirFd = null;
    }
    if (ended) return;
    const { flags, cols, rows, term } = terminalFacts();
    const envRecord: Record<string, string> = {};
    for (const [k, v] of Object.entries(env)) if (v !== undefined) envRecord[k] = v;
    // The coordinator's alone: a line it hands back runs as our child, and
    // we live until it ends.
    envRecord['__MPMAKE_SHIM_PID'] = String(process.pid);
    sock.write(
      encodeRequest({
        umask: readUmask(),
        flags,
        cols,
        rows,
        ppid: process.ppid,
        cwd,
        argv: [...argv],
        env: envRecord,
      }),
    );
    requestSent = true;
    if (term && cols > 0 && rows > 0) {
      // SIGWINCH: the job's pty on the node follows the terminal (RESIZE).
      let sent = `${cols}x${rows}`;
      const onResize = (): void => {
        const [c, r] = [term.columns & 0xffff, term.rows & 0xffff];
        if (ended || cancelSent || c === 0 || r === 0 || `${c}x${r}` === sent) return;
        sent = `${c}x${r}`;
        sock.write(resizeFrame(c, r));
      };
      term.on('resize', onResize);
      unwatchSize = () => term.off('resize', onResize);
    }
    noteSignals();
  });

  sock.on('data', (chunk: Buffer) => {
    if (ended) return;
    let frames: Array<{ type: number; payload: Buffer }>;
    try {
      frames = reader.push(chunk);
    } catch (err) {
      enqueue({ kind: 'lost', reason: errText(err) });
      sock.pause();
      return;
    }
    for (const f of frames) {
      switch (f.type) {
        case ShimFrame.Stdout:
          enqueue({ kind: 'out', fd: 1, buf: Buffer.from(f.payload) });
          break;
        case ShimFrame.Stderr:
          enqueue({ kind: 'out', fd: 2, buf: Buffer.from(f.payload) });
          break;
        case ShimFrame.Exit:
          if (f.payload.length < 8) {
            enqueue({ kind: 'lost', reason: `malformed EXIT frame (${f.payload.length} bytes)` });
          } else {
            enqueue({
              kind: 'exit',
              code: f.payload.readInt32BE(0),
              signal: f.payload.readInt32BE(4),
            });
          }
          sock.pause();
          return;
        case ShimFrame.Expect:
          try {
            expected = decodeExpect(f.payload);
          } catch (err) {
            enqueue({ kind: 'lost', reason: errText(err) });
          }
          break;
        case ShimFrame.Local: {
          const nul = f.payload.indexOf(0);
          const shell = f.payload.toString('utf8', 0, nul < 0 ? f.payload.length : nul);
          enqueue({ kind: 'local', shell });
          sock.pause();
          return;
        }
        default:
          break; // unknown frames are skipped (newer coordinator)
      }
    }
  });

  sock.on('error', (err: NodeJS.ErrnoException) => {
    closeReason = requestSent ? `read: ${errText(err)}` : `connect: ${errText(err)}`;
  });

  sock.on('close', () => {
    if (ended) return;
    enqueue({
      kind: 'lost',
      reason: closeReason ?? "the connection closed before the job's exit status arrived",
    });
  });
}

/** WROTE for a line run here by itself; `then` runs once it is sent (or cannot be). */
function tellWritten(sockPath: string, target: string, then: () => void): void {
  let cwd: string;
  try {
    cwd = process.cwd();
  } catch {
    return then();
  }
  let done = false;
  const next = (): void => {
    if (done) return;
    done = true;
    then();
  };
  const sock = net.createConnection(sockPath);
  sock.on('error', () => {
    sock.destroy();
    next();
  });
  sock.on('connect', () => sock.end(encodeWrote({ cwd, paths: [target] }), next));
}

function main(): void {
  const argv = [process.argv[1] ?? 'sh', ...process.argv.slice(2)];
  const env: ShimEnv = process.env;
  const decision = decide(argv, env, process.ppid);
  if (decision.where === 'local' && decision.reason === 'local-list' && env.MPMAKE_TARGET) {
    // As the native shim: the coordinator learns what the line writes first.
    tellWritten(env.MPMAKE_SOCK!, env.MPMAKE_TARGET, () => runShell(realShell(env), argv.slice(1)));
    return;
  }
  if (decision.where === 'local') {
    runShell(realShell(env), argv.slice(1));
    return;
  }
  let cwd: string;
  try {
    cwd = process.cwd();
  } catch {
    // the directory was removed: no node could enter it; the shell copes
    runShell(realShell(env), argv.slice(1));
    return;
  }
  runRemote(env.MPMAKE_SOCK!, cwd, argv, env);
}

main();
