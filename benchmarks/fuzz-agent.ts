/**
 * A longer fuzzing run against one agent than the test suite's (see
 * test/helpers/agent-fuzz.ts for the cases):
 *
 *   node dist/benchmarks/fuzz-agent.js [--cases 100000] [--seconds 120]
 *                                      [--concurrency 16] [--seed N]
 *
 * Runs until either limit, in rounds of 1,000 cases; an agent found dead
 * between rounds counts as a crash and is started again. A well-behaved
 * client runs jobs throughout. Prints and writes (results/fuzz-agent.*):
 * cases tried, crashes, executions (jobs that ran for a connection that
 * never authenticated, and connections welcomed without a valid proof:
 * both must be 0), the good client's jobs and failures, and the agent's
 * peak RSS (VmRSS, sampled every 50 ms) and its RSS at the end.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnLocalAgent, type LocalAgent } from '../lib/agent/spawn-agent.js';
import { TestClient } from '../test/agent/client.js';
import { fuzzAgent, markers, markerViolations } from '../test/helpers/agent-fuzz.js';
import { rssBytes } from '../test/helpers/procs.js';
import { benchEnv, isMain, machine, markdownTable, numberOptions, writeResults } from './common.js';

export interface FuzzAgentOptions {
  cases: number;
  seconds: number;
  concurrency: number;
  seed: number;
}

const ROUND = 1000;

export async function runFuzzAgent(options: FuzzAgentOptions): Promise<unknown> {
  const dir = mkdtempSync(join(tmpdir(), 'mpmake-bench-fuzz-'));
  const markerDir = join(dir, 'marks');
  const goodDir = join(dir, 'good');
  const secret = Buffer.from('fuzz benchmark secret');
  const secretPath = join(dir, 'secret');
  writeFileSync(secretPath, secret, { mode: 0o600 });
  mkdirSync(markerDir);
  mkdirSync(goodDir);
  const teardowns: (() => unknown)[] = [];
  const t = { teardown: (fn: () => unknown) => void teardowns.push(fn) };
  const start = (): Promise<LocalAgent> =>
    spawnLocalAgent({ slots: 4, id: 'fuzz-agent', secretFile: secretPath, env: benchEnv() });

  let agent = await start();
  let crashes = 0;
  let peakRss = 0;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssBytes(agent.pid))), 50);
  const started = Date.now();
  const deadline = started + options.seconds * 1000;
  let tried = 0;
  let noHello = 0;
  const welcomed = new Set<number>();
  const welcomedWithoutProof: number[] = [];
  const byKind: Record<string, number> = {};
  let goodJobs = 0;
  let goodFailures = 0;
  try {
    for (let round = 0; tried < options.cases && Date.now() < deadline; round++) {
      if (agent.process.exitCode !== null || agent.process.signalCode !== null) {
        crashes++;
        process.stdout.write(
          `agent died (${agent.process.signalCode ?? agent.process.exitCode}); restarting\n`,
        );
        agent = await start();
      }
      let fuzzing = true;
      const good = await TestClient.ready(t, agent.port, secret);
      // Heartbeats, as a real client's: a client silent for 4 s is gone to the agent.
      let beats = 0;
      const heartbeat = setInterval(() => good.send({ type: 'ping', seq: beats++ }), 1000);
      const goodLoop = (async () => {
        while (fuzzing) {
          const r = await good.run(`echo good`, { cwd: goodDir }).catch(() => undefined);
          goodJobs++;
          if (r?.exit.code !== 0 || r.stdout.toString() !== 'good\n') goodFailures++;
        }
      })();
      const r = await fuzzAgent({
        port: agent.port,
        secret,
        markerDir,
        cases: Math.min(ROUND, options.cases - tried),
        seconds: Math.max(0, (deadline - Date.now()) / 1000),
        concurrency: options.concurrency,
        seed: options.seed + round,
        firstCase: tried,
      });
      fuzzing = false;
      await goodLoop;
      clearInterval(heartbeat);
      good.socket.destroy();
      tried += r.tried;
      noHello += r.noHello;
      for (const id of r.welcomed) welcomed.add(id);
      welcomedWithoutProof.push(...r.welcomedWithoutProof);
      for (const [k, n] of Object.entries(r.byKind)) byKind[k] = (byKind[k] ?? 0) + n;
      process.stdout.write(
        `${tried} cases, ${((Date.now() - started) / 1000).toFixed(0)} s, peak RSS ` +
          `${(peakRss / 2 ** 20).toFixed(0)} MiB\n`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    const violations = markerViolations(markerDir, welcomed).length;
    const result = {
      options,
      machine: machine(),
      seconds: (Date.now() - started) / 1000,
      cases: tried,
      crashes: crashes + (agent.process.exitCode !== null ? 1 : 0),
      executions: violations + welcomedWithoutProof.length,
      jobsRunByAuthenticatedCases: markers(markerDir).length - violations,
      noHello,
      goodJobs,
      goodFailures,
      peakRssMiB: Math.round(peakRss / 2 ** 20),
      /** After the run, once its connections are gone: a leak would show here. */
      endRssMiB: Math.round(rssBytes(agent.pid) / 2 ** 20),
      byKind,
    };
    const markdown =
      `# fuzz-agent: the agent under fuzzed connections\n\n` +
      markdownTable(
        [
          'cases',
          'seconds',
          'crashes',
          'executions',
          'good jobs (failed)',
          'peak RSS MiB',
          'RSS at the end MiB',
        ],
        [
          [
            result.cases,
            result.seconds.toFixed(0),
            result.crashes,
            result.executions,
            `${goodJobs} (${goodFailures})`,
            result.peakRssMiB,
            result.endRssMiB,
          ],
        ],
      ) +
      '\n' +
      markdownTable(
        ['case kind', 'tried'],
        Object.entries(byKind).sort(([a], [b]) => a.localeCompare(b)),
      );
    const files = await writeResults('fuzz-agent', result, markdown);
    process.stdout.write(`\n${markdown}\nwrote ${files.join(', ')}\n`);
    return result;
  } finally {
    clearInterval(sampler);
    for (const fn of teardowns) await fn();
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  try {
    const o = numberOptions(process.argv.slice(2), ['cases', 'seconds', 'concurrency', 'seed']);
    const r = (await runFuzzAgent({
      cases: o['cases'] ?? 100_000,
      seconds: o['seconds'] ?? 120,
      concurrency: o['concurrency'] ?? 16,
      seed: o['seed'] ?? 1,
    })) as { crashes: number; executions: number; goodFailures: number };
    if (r.crashes + r.executions + r.goodFailures > 0) process.exitCode = 1;
  } catch (err) {
    process.stderr.write(`fuzz-agent: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}
