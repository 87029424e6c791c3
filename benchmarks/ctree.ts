/**
 * mpmake on a real C build, with the same total parallelism as make: the
 * bundled tree (fixtures/trees/ctree-small, 24 units of ~0.3 s each) built
 * by `make -jS` and by `mpmake -jS` on A loopback agents whose slots add up
 * to S. Every agent runs on this machine, so no speed-up is possible and the
 * wall ratio is mpmake's overhead on a build whose jobs cost something.
 *
 *   node dist/benchmarks/ctree.js [--agents 2] [--slots 1] [--runs 5]
 *                                 [--units N --work W]   (a generated tree instead)
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnLocalAgent, type LocalAgent } from '../lib/agent/spawn-agent.js';
import { generateTree } from '../fixtures/gen-tree.js';
import {
  benchEnv,
  fmt,
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
  publishResults,
  type Measured,
} from './common.js';

export interface CtreeOptions {
  agents: number;
  slots: number;
  runs: number;
  /** Generate a tree with these instead of using the committed one. */
  units?: number;
  work?: number;
}

export const CTREE_TARGETS = { wallRatio: 1.1 };

interface Sample extends Measured {
  agentCpuMs: number;
}

export async function runCtree(options: CtreeOptions): Promise<unknown> {
  const { agents: nAgents, slots, runs } = options;
  const total = nAgents * slots;
  const dir = mkdtempSync(join(tmpdir(), 'mpmake-bench-ctree-'));
  const generated = options.units !== undefined || options.work !== undefined;
  if (generated) {
    generateTree('ctree', dir, { units: options.units, work: options.work });
  } else {
    cpSync(join(repoRoot, 'fixtures', 'trees', 'ctree-small'), dir, { recursive: true });
  }
  const agents: LocalAgent[] = [];
  try {
    for (let i = 0; i < nAgents; i++) {
      agents.push(await spawnLocalAgent({ slots, id: `bench-ctree-${i}`, env: benchEnv() }));
    }
    const hosts = agents.map((a) => a.hostSpec).join(' ');
    const agentCpu = (): number => agents.reduce((s, a) => s + processCpuMs(a.pid), 0);
    const sample = async (file: string, args: string[]): Promise<Sample> => {
      await measure('make', ['-s', 'clean'], dir);
      const before = agentCpu();
      const m = await measure(file, args, dir);
      const agentCpuMs = agentCpu() - before;
      if (m.code !== 0)
        throw new Error(`${file} ${args.join(' ')} failed (${m.code}): ${m.stderr}`);
      return { ...m, agentCpuMs };
    };
    const variants = {
      make: () => sample('make', [`-j${total}`]),
      mpmake: () =>
        sample(process.execPath, [mpmakeCli, '--mp-quiet', `--mp-hosts=${hosts}`, `-j${total}`]),
    };
    const results = await interleave(runs, variants, (v, round, r) =>
      process.stderr.write(
        `ctree: round ${round + 1}/${runs} ${v}: ${fmt(r.wallMs / 1000)} s wall, ` +
          `${fmt(r.cpuMs / 1000)} s client CPU, ${fmt(r.agentCpuMs / 1000)} s agent CPU\n`,
      ),
    );
    const summary = {
      make: {
        wallMs: median(results.make.map((r) => r.wallMs)),
        clientCpuMs: median(results.make.map((r) => r.cpuMs)),
      },
      mpmake: {
        wallMs: median(results.mpmake.map((r) => r.wallMs)),
        clientCpuMs: median(results.mpmake.map((r) => r.cpuMs)),
        agentCpuMs: median(results.mpmake.map((r) => r.agentCpuMs)),
      },
    };
    const wallRatio = summary.mpmake.wallMs / summary.make.wallMs;
    const json = {
      benchmark: 'ctree',
      date: new Date().toISOString(),
      machine: machine(),
      options,
      tree: generated
        ? `generated ctree --units ${options.units ?? 24} --work ${options.work ?? 80}`
        : 'fixtures/trees/ctree-small',
      targets: CTREE_TARGETS,
      summary,
      wallRatio,
      samples: results,
    };
    const md =
      `# ctree: ${json.tree}, -j${total}; mpmake on ${nAgents} loopback agent(s) × ${slots} slot(s)\n\n` +
      `Medians of ${runs} interleaved runs on ${json.machine.cpus} CPUs (${json.machine.cpuModel}), ` +
      `${json.machine.make}, Node ${json.machine.node}.\n\n` +
      markdownTable(
        ['variant', 'wall s', 'wall ratio', 'client CPU s', 'agent CPU s (with jobs)'],
        [
          [
            'make',
            fmt(summary.make.wallMs / 1000),
            '1.00',
            fmt(summary.make.clientCpuMs / 1000),
            '-',
          ],
          [
            'mpmake',
            fmt(summary.mpmake.wallMs / 1000),
            fmt(wallRatio),
            fmt(summary.mpmake.clientCpuMs / 1000),
            fmt(summary.mpmake.agentCpuMs / 1000),
          ],
        ],
      ) +
      `\nTarget: wall ratio ≤ ${CTREE_TARGETS.wallRatio} (measured ${fmt(wallRatio)}, ` +
      `${wallRatio <= CTREE_TARGETS.wallRatio ? 'meets target' : 'MISSES target'}).\n`;
    await publishResults('ctree', json, md);
    return json;
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  try {
    const o = numberOptions(process.argv.slice(2), ['agents', 'slots', 'runs', 'units', 'work']);
    await runCtree({
      agents: o['agents'] ?? 2,
      slots: o['slots'] ?? 1,
      runs: o['runs'] ?? 5,
      units: o['units'],
      work: o['work'],
    });
  } catch (err) {
    process.stderr.write(`ctree: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
