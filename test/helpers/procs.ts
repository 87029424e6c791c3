/**
 * Processes seen through /proc, for tests that must prove nothing was left
 * running: recipes run a `sleep` with a duration unique to the test (a
 * marker), and the test looks for that command line.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** A sleep duration no other test or process uses, e.g. "37.4182". */
export function markerSeconds(base = 30): string {
  return `${base}.${Math.floor(Math.random() * 9000 + 1000)}`;
}

/** Pids of live processes whose argv satisfies `match`. */
function processesWhere(match: (argv: string[], pid: number) => boolean): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (match(readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0'), Number(d)))
        out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

/** Pids whose command line is `sleep SECONDS`. */
export function sleepers(seconds: string): number[] {
  return processesWhere(
    (argv, pid) => argv[0]?.endsWith('sleep') === true && argv[1] === seconds && !isShim(argv, pid),
  );
}

/** Pids of processes (not shims) with an argument containing `marker` (a recipe's `bash -c LINE`). */
export function runningWith(marker: string): number[] {
  return processesWhere((argv, pid) => argv.some((a) => a.includes(marker)) && !isShim(argv, pid));
}

/**
 * Whether a process is an mpmake shim: the native one keeps make's argv
 * (`/bin/sh -c LINE`, or the program itself on make's fast path), so it is
 * known by its executable; the SHELL= fallback by its `<run dir>/sh` name.
 */
function isShim(argv: string[], pid: number): boolean {
  if (/\/mpmake-[^/]+\/sh$/.test(argv[0] ?? '')) return true;
  try {
    return readlinkSync(`/proc/${pid}/exe`).endsWith('/mpmake-shim');
  } catch {
    return false;
  }
}

/** Resident memory of `pid` in bytes (0 once it is gone). */
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Polls `check` every 50 ms until it holds or `ms` pass; returns whether it held. */
export async function eventually(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (check()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Pids of mpmake shims whose command line contains `fragment`. */
export function shims(fragment: string): number[] {
  return processesWhere((argv, pid) => isShim(argv, pid) && argv.join(' ').includes(fragment));
}

/** Sends `signal` to `pid` unless it is gone. */
export function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone
  }
}

/** A process the test may stop (SIGSTOP) is let go again when the test ends. */
export function resumeOnTeardown(t: { teardown(fn: () => void): void }, pid: number): void {
  t.teardown(() => tryKill(pid, 'SIGCONT'));
}
