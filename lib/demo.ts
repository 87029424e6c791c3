import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnLocalAgent, type LocalAgent } from './agent/spawn-agent.js';
import { UsageError } from './errors.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface DemoOptions {
  agents: number;
  slots: number;
  tree: string;
}

const TREES = join(root, 'fixtures', 'trees');

/** A whole number from 1 to `max`, or a usage error naming the option. */
function count(text: string, option: string, max: number): number {
  if (!/^[0-9]+$/.test(text) || Number(text) < 1 || Number(text) > max) {
    throw new UsageError(`${option} must be a whole number from 1 to ${max}, not "${text}"`);
  }
  return Number(text);
}

/** Checks mpm demo's options, as typed: counts in range, a tree that exists. */
export function demoOptions(raw: { agents: string; slots: string; tree: string }): DemoOptions {
  const trees = readdirSync(TREES, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  if (!trees.includes(raw.tree)) {
    throw new UsageError(
      `--tree ${JSON.stringify(raw.tree)} is not one of the bundled trees; choose one of: ${trees.join(', ')}`,
    );
  }
  return {
    agents: count(String(raw.agents), '--agents', 16),
    slots: count(String(raw.slots), '--slots', 64),
    tree: raw.tree,
  };
}

/**
 * `mpm demo`: the quick start. Starts local agents on loopback, builds a
 * copy of a bundled fixture tree with `mpmake -j` through them, shows where
 * the jobs ran, runs the program it built, and stops the agents.
 */
export async function runDemo(opts: DemoOptions): Promise<number> {
  const src = join(TREES, opts.tree);
  const work = mkdtempSync(join(tmpdir(), 'mpmake-demo-'));
  const agents: LocalAgent[] = [];
  const log = (s: string): void => void process.stdout.write(s + '\n');
  // The demo cluster has a secret of its own, as a real one does (and a
  // user's MPMAKE_SECRET_FILE does not get in the way).
  const secretDir = mkdtempSync(join(tmpdir(), 'mpmake-demo-secret-'));
  const secretFile = join(secretDir, 'secret');
  writeFileSync(secretFile, randomBytes(24).toString('base64') + '\n', { mode: 0o600 });
  try {
    cpSync(src, work, { recursive: true });
    for (let i = 0; i < opts.agents; i++) {
      agents.push(
        await spawnLocalAgent({ slots: opts.slots, id: `demo-node-${i + 1}`, secretFile }),
      );
    }
    const hosts = agents.map((a) => a.hostSpec).join(' ');
    log(`mpm demo: started ${agents.length} agents on loopback: ${hosts}`);
    log(
      `mpm demo: building ${opts.tree} (a copy in ${work}) with: mpmake -j --mp-hosts="${hosts}"`,
    );
    const report = join(work, '.mpmake-report.json');
    const code = await new Promise<number>((resolve) => {
      const child = spawn(
        process.execPath,
        [
          join(root, 'dist/cli/mpmake.js'),
          '-j',
          `--mp-hosts=${hosts}`,
          `--mp-secret-file=${secretFile}`,
          `--mp-report=${report}`,
        ],
        { cwd: work, stdio: 'inherit' },
      );
      child.on('exit', (c, s) => resolve(c ?? (s ? 128 : 1)));
    });
    if (code !== 0) {
      log(`mpm demo: the build failed with exit status ${code}`);
      return code;
    }
    const r = JSON.parse(readFileSync(report, 'utf8')) as {
      wallMs: number;
      jobs: { remote: number; local: number };
      nodes: Array<{ id: string; jobs: number }>;
    };
    log('mpm demo: where the jobs ran:');
    for (const n of r.nodes) log(`  ${n.id.padEnd(16)} ${String(n.jobs).padStart(4)} jobs`);
    log(
      `  remote ${r.jobs.remote}, local ${r.jobs.local}, wall time ${(r.wallMs / 1000).toFixed(2)} s`,
    );
    return 0;
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    rmSync(work, { recursive: true, force: true });
    rmSync(secretDir, { recursive: true, force: true });
    log(`mpm demo: stopped the ${agents.length} agents`);
  }
}
