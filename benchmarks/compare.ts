/**
 * mpmake beside distcc (and icecream, where it can run) on the bundled C
 * tree, fixtures/trees/ctree-small, with the same parallelism everywhere:
 *
 *   make     `make -j2`, all local
 *   mpmake   `mpmake -j2` on 2 loopback agents × 1 slot (as ctree.ts)
 *   distcc   `make -j2 CC="distcc gcc"`, DISTCC_HOSTS=127.0.0.1:PORT/2, one
 *            distccd started here on 127.0.0.1 (--allow 127.0.0.1, --jobs 2)
 *
 * Interleaved, one untimed warm-up, medians, each variant's wall ratio to
 * local make side by side. Every daemon started here is stopped by its pid.
 *
 *   node dist/benchmarks/compare.js [--runs 5]
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LocalAgent } from '../lib/agent/spawn-agent.js';
import {
  benchEnv,
  delay,
  fmt,
  hostList,
  interleave,
  isMain,
  machine,
  markdownTable,
  measure,
  median,
  mpmakeCli,
  numberOptions,
  processCpuMs,
  repoRoot,
  startAgents,
  stopAgents,
  publishResults,
  type Measured,
} from './common.js';

export interface CompareOptions {
  runs: number;
}

const JOBS = 2;

/**
 * Why icecream is not run. Checked by hand with strace on icecream 1.4.0
 * (Debian bookworm): `icecc-scheduler -i lo -p P` and
 * `iceccd -i lo -s 127.0.0.1:P` both still send UDP broadcasts to every
 * other interface's broadcast address (eth0's), and iceccd then fails to
 * bind its second TCP listener on the same port, so it cannot be confined
 * to loopback here.
 */
const ICECREAM_SKIP =
  'icecream skipped: icecc-scheduler and iceccd 1.4 send UDP broadcasts on every non-loopback ' +
  'interface even with -i lo and -s 127.0.0.1:PORT (seen with strace), so they cannot be ' +
  'confined to loopback on this machine';

function has(program: string): boolean {
  try {
    execFileSync('/bin/sh', ['-c', `command -v ${program}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject()));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

interface Distccd {
  port: number;
  child: ChildProcess;
  stderr: () => string;
  stop(): Promise<void>;
}

/** Starts distccd on 127.0.0.1, in the foreground as our child, and waits until it accepts. */
async function startDistccd(): Promise<Distccd> {
  const port = await freePort();
  const child = spawn(
    'distccd',
    [
      '--daemon',
      '--no-detach',
      '--allow',
      '127.0.0.1',
      '--listen',
      '127.0.0.1',
      '--port',
      String(port),
      '--jobs',
      String(JOBS),
      '--log-stderr',
      '--log-level=warning',
    ],
    { env: benchEnv(), stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4096)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) break;
    if (await canConnect(port)) return { port, child, stderr: () => stderr, stop };
    await delay(50);
  }
  await stop();
  throw new Error(`distccd did not start on 127.0.0.1:${port}: ${stderr.trim()}`);
}

type Variant = 'make' | 'mpmake' | 'distcc';

interface Sample extends Measured {
  daemonCpuMs: number;
}

export async function runCompare(options: CompareOptions): Promise<unknown> {
  const { runs } = options;
  const loadBefore = loadavg()[0]!;
  const dir = mkdtempSync(join(tmpdir(), 'mpmake-bench-compare-'));
  const distccDir = join(dir, '.distcc-state');
  const tree = join(dir, 'tree');
  cpSync(join(repoRoot, 'fixtures', 'trees', 'ctree-small'), tree, { recursive: true });
  mkdirSync(distccDir, { recursive: true });
  const skipped: string[] = [];
  let agents: LocalAgent[] = [];
  let distccd: Distccd | undefined;
  try {
    agents = await startAgents(JOBS, 1, 'bench-compare');
    if (has('distcc') && has('distccd')) distccd = await startDistccd();
    else skipped.push('distcc skipped: not installed (apt-get install distcc)');
    if (has('icecc') || has('iceccd')) skipped.push(ICECREAM_SKIP);
    else skipped.push('icecream skipped: not installed');
    for (const line of skipped) process.stderr.write(`compare: ${line}\n`);

    const agentCpu = (): number => agents.reduce((s, a) => s + processCpuMs(a.pid), 0);
    const sample = async (
      file: string,
      args: string[],
      env: NodeJS.ProcessEnv,
      daemonCpu: () => number,
    ): Promise<Sample> => {
      await measure('make', ['-s', 'clean'], tree);
      const before = daemonCpu();
      const m = await measure(file, args, tree, env);
      const daemonCpuMs = daemonCpu() - before;
      if (m.code !== 0)
        throw new Error(`${file} ${args.join(' ')} failed (${m.code}): ${m.stderr}`);
      if (/failed to distribute|Warning: failed/i.test(m.stderr)) {
        throw new Error(`distcc compiled locally instead: ${m.stderr.slice(-500)}`);
      }
      return { ...m, daemonCpuMs };
    };
    const variants: Partial<Record<Variant, () => Promise<Sample>>> = {
      make: () => sample('make', [`-j${JOBS}`], {}, () => 0),
      mpmake: () =>
        sample(
          process.execPath,
          [mpmakeCli, '--mp-quiet', `--mp-hosts=${hostList(agents)}`, `-j${JOBS}`],
          {},
          agentCpu,
        ),
    };
    if (distccd) {
      const d = distccd;
      variants.distcc = () =>
        sample(
          'make',
          [`-j${JOBS}`, 'CC=distcc gcc'],
          { DISTCC_HOSTS: `127.0.0.1:${d.port}/${JOBS}`, DISTCC_DIR: distccDir },
          // distccd's pre-forked children do the work; the parent's count
          // holds only those already reaped, so this is a lower bound.
          () => processCpuMs(d.child.pid!),
        );
    }
    const all = variants as Record<Variant, () => Promise<Sample>>;
    for (const v of Object.values(all)) await v();
    const results = await interleave(runs, all, (v, round, r) =>
      process.stderr.write(
        `compare: round ${round + 1}/${runs} ${v}: ${fmt(r.wallMs / 1000)} s wall, ` +
          `${fmt(r.cpuMs / 1000)} s client CPU\n`,
      ),
    );
    const names = Object.keys(results) as Variant[];
    const base = median(results.make.map((r) => r.wallMs));
    const summary = Object.fromEntries(
      names.map((v) => {
        const wallMs = median(results[v].map((r) => r.wallMs));
        return [
          v,
          {
            wallMs,
            ratio: wallMs / base,
            clientCpuMs: median(results[v].map((r) => r.cpuMs)),
            minWallMs: Math.min(...results[v].map((r) => r.wallMs)),
            maxWallMs: Math.max(...results[v].map((r) => r.wallMs)),
          },
        ];
      }),
    ) as Record<
      Variant,
      { wallMs: number; ratio: number; clientCpuMs: number; minWallMs: number; maxWallMs: number }
    >;
    const json = {
      benchmark: 'compare',
      date: new Date().toISOString(),
      machine: machine(),
      loadavg1Before: loadBefore,
      options,
      tree: 'fixtures/trees/ctree-small',
      distcc: distccd ? execFileSync('distcc', ['--version']).toString().split('\n')[0] : undefined,
      skipped,
      summary,
      samples: results,
    };
    const mm = json.machine;
    const label: Record<Variant, string> = {
      make: `make -j${JOBS} (local)`,
      mpmake: `mpmake -j${JOBS}, ${JOBS} loopback agents × 1 slot`,
      distcc: `make -j${JOBS} CC="distcc gcc", one loopback distccd (/${JOBS})`,
    };
    const md =
      `# compare: fixtures/trees/ctree-small (24 C units + link + run) at -j${JOBS}: make, mpmake, distcc\n\n` +
      `Every "remote" side runs on this machine too, so nothing can beat local make: the ratio is ` +
      `each tool's overhead on a real C build. Medians of ${runs} interleaved runs (min–max in ` +
      `brackets) on ${mm.cpus} CPUs (${mm.cpuModel}), ${mm.make}, Node ${mm.node}` +
      `${json.distcc ? `, ${json.distcc}` : ''}; load average ${fmt(loadBefore)} before. ` +
      `Client CPU = the measured command and all it waited for (distcc's local preprocessing ` +
      `included; agents' and distccd's compiles not).\n\n` +
      markdownTable(
        ['variant', 'wall s', 'ratio to make', 'client CPU s'],
        names.map((v) => [
          label[v],
          `${fmt(summary[v].wallMs / 1000)} (${fmt(summary[v].minWallMs / 1000)}–${fmt(summary[v].maxWallMs / 1000)})`,
          fmt(summary[v].ratio),
          fmt(summary[v].clientCpuMs / 1000),
        ]),
      ) +
      (skipped.length ? `\n${skipped.map((s) => `- ${s}`).join('\n')}\n` : '');
    await publishResults('compare', json, md);
    return json;
  } finally {
    await distccd?.stop();
    await stopAgents(agents);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  try {
    const o = numberOptions(process.argv.slice(2), ['runs']);
    await runCompare({ runs: o['runs'] ?? 5 });
  } catch (err) {
    process.stderr.write(`compare: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
