import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';

export interface MakeResult {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

/** Whether `pid` still catches `signal` (make resets a fatal signal once it got it). */
function catches(pid: number, signal: NodeJS.Signals): boolean {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(status);
    const bit = BigInt(1) << BigInt(osConstants.signals[signal] - 1);
    return m ? (BigInt('0x' + m[1]) & bit) !== BigInt(0) : false;
  } catch {
    return false;
  }
}

/**
 * Runs make and waits for it, forwarding the signals mpmake gets. A Ctrl-C
 * on a terminal reaches make (and its shims) directly, being in our process
 * group; forwarding it again would kill make before it waits for its
 * children. So SIGINT/SIGQUIT are forwarded only when make did not get them
 * itself (it still catches them 100 ms later); SIGTERM and SIGHUP, which
 * `kill` sends to one process, always are.
 */
export function runMake(
  make: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  /** make's fds 3, 4, …: an fd of ours, or nothing there (undefined). */
  extraFds: (number | undefined)[],
  /** make's argv[0], from which it takes $(MAKE), MAKE_COMMAND and its name in messages. */
  argv0?: string,
): { child: ChildProcess; done: Promise<MakeResult> } {
  const stdio: StdioOptions = [
    'inherit',
    'inherit',
    'inherit',
    ...extraFds.map((fd) => fd ?? 'ignore'),
  ];
  const child = spawn(make, args, argv0 !== undefined ? { stdio, env, argv0 } : { stdio, env });
  const handlers = new Map<NodeJS.Signals, () => void>();
  for (const sig of FORWARDED) {
    const h = (): void => {
      const pid = child.pid;
      if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      if (sig === 'SIGINT' || sig === 'SIGQUIT') {
        setTimeout(() => {
          if (child.exitCode === null && child.signalCode === null && catches(pid, sig))
            child.kill(sig);
        }, 100).unref();
      } else child.kill(sig);
    };
    handlers.set(sig, h);
    process.on(sig, h);
  }
  const done = new Promise<MakeResult>((resolve) => {
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      for (const [sig, h] of handlers) process.off(sig, h);
      resolve({ code, signal });
    };
    child.on('error', (err) => {
      // Checked before the build (option-checks.ts); this is a race with its removal.
      const why = (err as NodeJS.ErrnoException).code ?? err.message;
      process.stderr.write(
        `mpmake: cannot start the make program ${make} (${why}); give a GNU make with --mp-make [MPM_ERR_USAGE]\n`,
      );
      finish(2, null);
    });
    child.on('exit', finish);
  });
  return { child, done };
}

/** What mpmake needs to know of the make program. */
export interface MakeFacts {
  /** GNU make's version as [major, minor]; undefined if it won't say. */
  version: [number, number] | undefined;
  /**
   * Whether this make leaks the jobserver fds to every child (upstream
   * make 4.3 without Debian's patch does), in which case the shim cannot
   * tell a recursive line by its fds and must look at the command text.
   */
  leaksJobserver: boolean;
}

const factsOf = new Map<string, MakeFacts>();

/**
 * The facts of `make`, from one run of it (once per process): a makefile
 * read from stdin prints $(MAKE_VERSION), then whether its recipe's shell
 * sees fd 3, which make was told is its jobserver (MAKEFLAGS) and has open.
 */
export function makeFacts(make: string, env: NodeJS.ProcessEnv): MakeFacts {
  const known = factsOf.get(make);
  if (known) return known;
  const r = spawnSync(make, ['-s', '-f', '-'], {
    input: `all:\n\t@echo '$(MAKE_VERSION)'; if [ -e /proc/$$$$/fd/3 ]; then echo leaks; fi\n`,
    stdio: ['pipe', 'pipe', 'ignore', 'pipe'],
    env: { ...env, MAKEFLAGS: ' --jobserver-auth=3,3' },
    encoding: 'utf8',
  });
  const out = r.stdout ?? '';
  const m = /^(\d+)\.(\d+)/.exec(out);
  const facts: MakeFacts = {
    version: m ? [Number(m[1]), Number(m[2])] : undefined,
    leaksJobserver: /^leaks$/m.test(out),
  };
  factsOf.set(make, facts);
  return facts;
}
