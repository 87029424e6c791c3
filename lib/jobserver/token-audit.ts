import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { tracer } from '../trace.js';

const trace = tracer('jobserver');

/** A process holding the pool open, and its live children. */
interface Holder {
  pid: number;
  isMake: boolean;
  children: number;
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/**
 * Processes that hold the pool's FIFO open (they can take tokens), with how
 * many children each has. A make with k running children holds k-1 tokens
 * (one runs on its implicit slot). Returns undefined where /proc can't tell.
 */
export function poolHolders(fifoPath: string, makeNames: readonly string[]): Holder[] | undefined {
  let ino: number;
  let dev: number;
  try {
    const st = statSync(fifoPath);
    ino = st.ino;
    dev = st.dev;
  } catch {
    return undefined;
  }
  const target = `pipe:[${ino}]`;
  const pids = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
  const parents = new Map<number, number>();
  const holders: Holder[] = [];
  for (const pid of pids) {
    if (pid === process.pid) continue; // the pool's owner holds it too
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(pid, ppid);
    } catch {
      continue;
    }
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (link === target) {
        holders.push({ pid, isMake: false, children: 0 });
        break;
      }
      if (link.startsWith('/') && link.endsWith('/jobserver')) {
        try {
          const st = statSync(`/proc/${pid}/fd/${fd}`);
          if (st.ino === ino && st.dev === dev) {
            holders.push({ pid, isMake: false, children: 0 });
            break;
          }
        } catch {
          // gone
        }
      }
    }
  }
  for (const h of holders) {
    const name = comm(h.pid);
    h.isMake = makeNames.some((m) => name === m || name.startsWith(m));
    for (const ppid of parents.values()) if (ppid === h.pid) h.children++;
  }
  return holders;
}

/**
 * Finds tokens lost to clients that died holding them: tokens in circulation
 * minus those in the pool minus those the live makes hold. It only judges
 * when every holder is a make (another live client may hold any number),
 * and only a deficit seen twice in a row counts, since a make between
 * reading a token and starting its child looks one short for a moment.
 */
export class TokenAudit {
  private lastDeficit = 0;
  constructor(
    private readonly fifoPath: string,
    private readonly makeNames: readonly string[],
  ) {}

  /** `inPool`: tokens found in the pool just now; `circulating`: the pool's count. */
  deficit(inPool: number, circulating: number): number {
    const holders = poolHolders(this.fifoPath, this.makeNames);
    if (!holders || holders.some((h) => !h.isMake)) {
      this.lastDeficit = 0;
      return 0;
    }
    const held = holders.reduce((a, h) => a + Math.max(0, h.children - 1), 0);
    const deficit = Math.max(0, circulating - inPool - held);
    const confirmed = Math.min(deficit, this.lastDeficit);
    this.lastDeficit = deficit;
    if (confirmed > 0)
      trace(`audit: ${confirmed} tokens lost (pool ${inPool}, held ${held}, of ${circulating})`);
    return confirmed;
  }
}
