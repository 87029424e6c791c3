/**
 * What a build has learnt about its commands: how long each kind of recipe
 * line ran, and what a round trip to a node costs. Pure data, no clock of
 * its own: the router feeds it measurements and asks it whether a line is
 * worth sending. Kept per tree between builds (lib/report/build-history.ts).
 */

/** A command's kind: its program's base name and its first words (`cmake -E cmake_echo_color`). */
export function commandKey(line: string): string {
  let words = line.trim().split(/\s+/);
  // `cd DIR && cmd …` (CMake's recipes): the command is what follows.
  while (words[0] === 'cd' && words[2] === '&&') words = words.slice(3);
  while (words[0] !== undefined && /^@|^-$|^\+$/.test(words[0]) && words[0].length === 1)
    words = words.slice(1);
  const [first, ...rest] = words;
  if (first === undefined) return '';
  const key = [first.slice(first.lastIndexOf('/') + 1)];
  for (const w of rest.slice(0, 2)) {
    // Stop at what differs between lines of one kind: paths, values, quotes.
    if (/[/=."'$]/.test(w) || w.length > 24) break;
    key.push(w);
  }
  return key.join(' ');
}

/**
 * Programs whose own work is a few syscalls: on a node, their CPU time is
 * what launching a line costs (CommandTimes.launchMs).
 */
const TRIVIAL_PROGRAMS = new Set([
  ':',
  'true',
  'echo',
  'printf',
  'touch',
  'mkdir',
  'rm',
  'rmdir',
  'ln',
  'cp',
  'mv',
  'chmod',
]);

/** What is kept of one kind of command. */
export interface CommandStats {
  /** Runs seen. */
  n: number;
  /** The last few wall times on the node, ms. */
  recentMs: number[];
  /**
   * The last few CPU times (user + system, from the node's wait4), ms, of
   * the runs whose node could tell. Absent in histories written before.
   */
  recentCpuMs?: number[];
}

/** How many run times are kept per kind of command. */
const RECENT_RUNS = 9;

const round1 = (ms: number): number => Math.round(ms * 10) / 10;

function medianOf(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

export interface CommandTimesData {
  /** A round trip's cost, ms: a remote line's wall time beyond its run time. */
  roundTripMs: number | undefined;
  commands: Record<string, CommandStats>;
}

/** How many round trips are averaged. */
const ROUND_TRIP_WINDOW = 32;

export class CommandTimes {
  private readonly commands: Map<string, CommandStats>;
  private readonly trips: number[] = [];
  private roundTripFromHistory: number | undefined;

  constructor(data?: CommandTimesData) {
    this.commands = new Map(Object.entries(data?.commands ?? {}));
    this.roundTripFromHistory = data?.roundTripMs;
  }

  /**
   * A line ran remotely: `runMs` on the node (wall), `wallMs` from request to
   * exit here, less its time in the node's queue; `cpuMs`, its CPU time on
   * the node, when the node could tell.
   */
  recordRemote(key: string, runMs: number, wallMs: number, cpuMs?: number): void {
    const prev = this.commands.get(key);
    const recentMs = [...(prev?.recentMs ?? []), Math.round(runMs)].slice(-RECENT_RUNS);
    const stats: CommandStats = { n: (prev?.n ?? 0) + 1, recentMs };
    const cpu = prev?.recentCpuMs ?? [];
    if (cpuMs !== undefined) stats.recentCpuMs = [...cpu, round1(cpuMs)].slice(-RECENT_RUNS);
    else if (cpu.length > 0) stats.recentCpuMs = cpu;
    this.commands.set(key, stats);
    this.trips.push(Math.max(0, wallMs - runMs));
    if (this.trips.length > ROUND_TRIP_WINDOW) this.trips.shift();
  }

  /** The median round trip of this build, else the last build's; undefined before any. */
  get roundTripMs(): number | undefined {
    return medianOf(this.trips) ?? this.roundTripFromHistory;
  }

  /**
   * What a line of this kind typically costs the machine that runs it, ms:
   * the median of its CPU times (user + system) when its nodes told them,
   * else of its wall times (pty jobs, jobs run as another user, histories
   * written before nodes reported CPU time). Undefined before any run.
   *
   * Not its wall time: time off the CPU (waiting for a disk, for a child,
   * or for a CPU on a loaded node) passes the same wherever the line runs,
   * and make's -j bounds the lines in flight either way; on a loaded box a
   * 5 ms helper's wall time is hundreds of ms of waiting for a CPU.
   */
  typicalCostMs(key: string): number | undefined {
    const stats = this.commands.get(key);
    const cpu = stats?.recentCpuMs ?? [];
    return medianOf(cpu.length > 0 ? cpu : (stats?.recentMs ?? []));
  }

  /**
   * What launching a line costs a node beyond the line's own work, ms: the
   * median CPU time the nodes told for the trivial kinds of command (`cp`,
   * `touch`, `echo`…, see TRIVIAL_PROGRAMS), whose own work is a few
   * syscalls: what is left is the node's launcher, its fork and exec, and
   * the shell. An upper bound (the trivial program's own exec counts in
   * it). Undefined before a trivial line has run on a node with its CPU
   * time told; placement takes 0 then.
   */
  get launchMs(): number | undefined {
    const cpu: number[] = [];
    for (const [key, stats] of this.commands) {
      if (TRIVIAL_PROGRAMS.has(key.split(' ')[0]!)) cpu.push(...(stats.recentCpuMs ?? []));
    }
    return medianOf(cpu);
  }

  /**
   * The two costs placement weighs for a line of this kind, ms, once its
   * cost and a round trip are known: run on the client, it takes its own
   * CPU time there (its typical cost on the nodes less their launch); sent,
   * it waits a round trip and the node's launch more. Undefined before.
   */
  estimate(key: string): { localMs: number; remoteMs: number } | undefined {
    const typical = this.typicalCostMs(key);
    const trip = this.roundTripMs;
    if (key === '' || typical === undefined || trip === undefined) return undefined;
    const launch = Math.min(this.launchMs ?? 0, typical);
    return { localMs: typical - launch, remoteMs: trip + launch };
  }

  /**
   * Whether a line of this kind is better run on the client: its own cost
   * there is below what sending it adds (see estimate). Run on the client,
   * it takes that much CPU from the client (at worst, with every core busy,
   * it delays other work by as much); sent to a node, the line waits a
   * round trip and the node's launch more. Each side pays what the other
   * saves, so the smaller one wins.
   */
  cheaperOnClient(key: string): boolean {
    const e = this.estimate(key);
    return e !== undefined && e.localMs < e.remoteMs;
  }

  /**
   * Where a line goes, given `runningHere` short lines already on the
   * client and at most `limit` at once (so short lines cannot swamp the
   * client: beyond it they go out): `short`, kept on the client; `busy`,
   * cheaper on the client but the client is full; `send`.
   */
  place(key: string, runningHere: number, limit: number): 'short' | 'busy' | 'send' {
    if (!this.cheaperOnClient(key)) return 'send';
    return runningHere < limit ? 'short' : 'busy';
  }

  toJSON(): CommandTimesData {
    return { roundTripMs: this.roundTripMs, commands: Object.fromEntries(this.commands) };
  }
}
