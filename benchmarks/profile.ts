/**
 * Where the coordinator's and the agent's CPU goes on the overhead
 * benchmark's workload (N trivial recipes, every line remote, -jJ, one
 * loopback agent with J slots): both run under `node --cpu-prof`, and the
 * profiles are summed by function (self time) and by module.
 *
 *   node dist/benchmarks/profile.js [--recipes 400] [--jobs 8] [--top 15]
 *
 * Writes results/profile.{json,md}; the raw .cpuprofile files are kept
 * under the temp directory it prints (open them in Chrome DevTools).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { generateTree } from '../fixtures/gen-tree.js';
import { localSecret } from '../lib/agent/local-secret.js';
import {
  benchEnv,
  fmt,
  isMain,
  launch,
  machine,
  markdownTable,
  mpmakeCli,
  numberOptions,
  readReport,
  repoRoot,
  writeResults,
} from './common.js';

export interface ProfileOptions {
  recipes: number;
  jobs: number;
  top: number;
}

interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
  }[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileRow {
  name: string;
  selfMs: number;
  share: number;
}

/** Self time by function and by module (file or node: builtin) of a .cpuprofile. */
export function summariseProfile(
  profile: CpuProfile,
  top: number,
): { totalMs: number; functions: ProfileRow[]; modules: ProfileRow[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const fn = new Map<string, number>();
  const mod = new Map<string, number>();
  let totalUs = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const cf = byId.get(id);
    if (!cf) return;
    totalUs += dt;
    const file = cf.url.startsWith('file://')
      ? relative(repoRoot, cf.url.slice('file://'.length))
      : cf.url || '(native)';
    const fname = `${cf.functionName || '(anonymous)'} ${file}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
    fn.set(fname, (fn.get(fname) ?? 0) + dt);
    const m = file.startsWith('node_modules/')
      ? file.split('/').slice(0, 2).join('/')
      : cf.url
        ? file
        : cf.functionName;
    mod.set(m, (mod.get(m) ?? 0) + dt);
  });
  const rows = (m: Map<string, number>): ProfileRow[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, selfMs: us / 1000, share: us / totalUs }));
  return { totalMs: totalUs / 1000, functions: rows(fn), modules: rows(mod) };
}

function readProfile(dir: string): CpuProfile {
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile written in ${dir}`);
  return JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
}

/** `mpm agent` on loopback under `node --cpu-prof` (spawnLocalAgent takes no node flags). */
async function profiledAgent(
  slots: number,
  profileDir: string,
): Promise<{ hostSpec: string; stop(): Promise<void> }> {
  const child = spawn(
    process.execPath,
    [
      '--cpu-prof',
      `--cpu-prof-dir=${profileDir}`,
      join(repoRoot, 'dist', 'cli', 'mpm.js'),
      'agent',
      '--listen',
      '127.0.0.1:0',
      '--slots',
      String(slots),
      '--id',
      'bench-profile',
      '--exit-with-stdin',
      // The secret benchEnv gives the clients: no other local user gets in.
      '--secret-file',
      localSecret().path,
      ...(process.geteuid?.() === 0 ? ['--allow-root'] : []),
    ],
    { env: benchEnv(), stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (l) => resolve(l));
    child.once('exit', (code) =>
      reject(new Error(`profiled agent exited (${code}) before listening`)),
    );
  });
  child.stdout!.resume();
  const m = /listening on (\S+) slots=(\d+)/.exec(line);
  if (!m) {
    await stop();
    throw new Error(`profiled agent printed ${JSON.stringify(line)}`);
  }
  return { hostSpec: `${m[1]}/${m[2]}`, stop };
}

export async function runProfile(options: ProfileOptions): Promise<unknown> {
  const { recipes, jobs, top } = options;
  const loadBefore = loadavg()[0]!;
  const base = mkdtempSync(join(tmpdir(), 'mpmake-bench-profile-'));
  const tree = join(base, 'tree');
  const coordDir = join(base, 'coordinator');
  const agentDir = join(base, 'agent');
  const reportPath = join(base, 'report.json');
  generateTree('trivial', tree, { units: recipes });
  // The agent profiles its whole life: start-up, one warm-up build, the build.
  const agent = await profiledAgent(jobs, agentDir);
  let stopped = false;
  try {
    const build = async (profile: boolean): Promise<number> => {
      const l = launch(
        process.execPath,
        [
          ...(profile ? ['--cpu-prof', `--cpu-prof-dir=${coordDir}`] : []),
          mpmakeCli,
          '--mp-quiet',
          '--mp-local=',
          `--mp-hosts=${agent.hostSpec}`,
          `--mp-report=${reportPath}`,
          `-j${jobs}`,
          '-B',
        ],
        tree,
      );
      const f = await l.done;
      if (f.code !== 0) throw new Error(`mpmake failed (${f.code}): ${f.stderr}`);
      // A profile of a build that fell back to local lines would say nothing about dispatch.
      const report = readReport(reportPath);
      if (!report || report.jobs.remote !== recipes) {
        throw new Error(
          `only ${report?.jobs.remote ?? 0} of ${recipes} lines ran on the agent: ${f.stderr.slice(-500)}`,
        );
      }
      return f.wallMs;
    };
    await build(false);
    const wallMs = await build(true);
    await agent.stop();
    stopped = true;
    const coordinator = summariseProfile(readProfile(coordDir), top);
    const agentProfile = summariseProfile(readProfile(agentDir), top);
    const json = {
      benchmark: 'profile',
      date: new Date().toISOString(),
      machine: machine(),
      loadavg1Before: loadBefore,
      options,
      wallMs,
      coordinator,
      agent: agentProfile,
      profiles: base,
    };
    const table = (rows: ProfileRow[]): string =>
      markdownTable(
        ['self ms', 'share', 'where'],
        rows.map((r) => [fmt(r.selfMs, 1), `${fmt(r.share * 100, 1)} %`, `\`${r.name}\``]),
      );
    const mm = json.machine;
    const md =
      `# profile: where the CPU goes, ${recipes} trivial recipes all remote, -j${jobs}, one loopback agent\n\n` +
      `\`node --cpu-prof\` on the coordinator (one build, ${fmt(wallMs / 1000)} s wall) and on the agent ` +
      `(its start-up, a warm-up build and the profiled build), on ${mm.cpus} CPUs (${mm.cpuModel}), ` +
      `Node ${mm.node}; load average ${fmt(loadBefore)} before. Self time; \`(program)\` is V8 and ` +
      `native work outside JavaScript (system calls, libuv), \`(garbage collector)\` is GC.\n\n` +
      `## coordinator: ${fmt(coordinator.totalMs, 0)} ms sampled, ${fmt(coordinator.totalMs / recipes, 2)} ms per recipe\n\n` +
      `By module:\n\n${table(coordinator.modules)}\nBy function:\n\n${table(coordinator.functions)}\n` +
      `## agent: ${fmt(agentProfile.totalMs, 0)} ms sampled over two builds and start-up\n\n` +
      `By module:\n\n${table(agentProfile.modules)}\nBy function:\n\n${table(agentProfile.functions)}`;
    const paths = await writeResults('profile', json, md);
    process.stdout.write(md + `\nwrote ${paths.join(', ')}; profiles in ${base}\n`);
    return json;
  } finally {
    if (!stopped) await agent.stop();
  }
}

if (isMain(import.meta.url)) {
  try {
    const o = numberOptions(process.argv.slice(2), ['recipes', 'jobs', 'top']);
    await runProfile({ recipes: o['recipes'] ?? 400, jobs: o['jobs'] ?? 8, top: o['top'] ?? 15 });
  } catch (err) {
    process.stderr.write(`profile: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
