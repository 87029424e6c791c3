/**
 * What a lost node costs. The sleep tree (U × `sleep S`) built by
 * `mpmake -j` on A loopback agents × K slots, four ways, interleaved:
 *
 *   undisturbed  nothing happens
 *   kill         one agent is SIGKILLed mid-build (its connection drops)
 *   stop-5000    one agent is SIGSTOPped mid-build (hung: the connection stays
 *                up, heartbeats stop), with the default --mp-heartbeat-timeout=5000
 *   stop-1500    the same with --mp-heartbeat-timeout=1500
 *
 * "Mid-build" is the first moment after --at-ms from the start at which the
 * agent runs a job. Reports the time from the signal to mpmake's
 * "lost … running it again" line on stderr (detection), and the extra wall
 * time against the undisturbed build. Stopped agents get SIGCONT and every
 * agent is stopped afterwards, by pid; each sample has fresh agents.
 *
 *   node dist/benchmarks/faults.js [--units 96] [--sleep 0.5] [--agents 4]
 *        [--slots 4] [--at-ms 1000] [--runs 3]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LocalAgent } from '../lib/agent/spawn-agent.js';
import { generateTree } from '../fixtures/gen-tree.js';
import {
  delay,
  fmt,
  hostList,
  interleave,
  isMain,
  launch,
  machine,
  markdownTable,
  median,
  mpmakeCli,
  nowMs,
  numberOptions,
  readReport,
  startAgents,
  stopAgents,
  publishResults,
} from './common.js';

export interface FaultsOptions {
  units: number;
  sleep: number;
  agents: number;
  slots: number;
  atMs: number;
  runs: number;
}

export const FAULTS_DEFAULTS: FaultsOptions = {
  units: 96,
  sleep: 0.5,
  agents: 4,
  slots: 4,
  atMs: 1000,
  runs: 3,
};

type Variant = 'undisturbed' | 'kill' | 'stop-5000' | 'stop-1500';

interface Sample {
  wallMs: number;
  /** From the signal to the first "lost … running it again" line. */
  detectMs: number | undefined;
  /** When the signal was sent, from the start of mpmake. */
  signalAtMs: number | undefined;
  /** Jobs the disturbed agent ran at the signal. */
  jobsAtSignal: number | undefined;
  reruns: number;
  code: number | null;
}

/** Child processes of `pid` (the agent's running jobs' launchers). */
function childCount(pid: number): number {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1')
      .trim()
      .split(/\s+/)
      .filter(Boolean).length;
  } catch {
    return 0;
  }
}

const LOST = /^mpmake: lost .* running it again/;

export async function runFaults(options: FaultsOptions): Promise<unknown> {
  const { units, sleep, slots, runs } = options;
  const nAgents = options.agents;
  if (nAgents < 2) throw new Error('--agents must be at least 2: one is lost, the others finish');
  const loadBefore = loadavg()[0]!;
  const base = mkdtempSync(join(tmpdir(), 'mpmake-bench-faults-'));
  const dir = join(base, 'tree');
  const reportPath = join(base, 'report.json');
  generateTree('sleep', dir, { units, sleepSeconds: sleep });
  const live = new Set<LocalAgent>();

  const sample = async (variant: Variant): Promise<Sample> => {
    execFileSync('make', ['-s', 'clean'], { cwd: dir, stdio: 'ignore' });
    rmSync(reportPath, { force: true });
    const agents = await startAgents(nAgents, slots, 'bench-faults');
    agents.forEach((a) => live.add(a));
    try {
      const victim = agents[1]!;
      const timeout = variant === 'stop-1500' ? ['--mp-heartbeat-timeout=1500'] : [];
      let lostAtMs: number | undefined;
      const l = launch(
        process.execPath,
        [
          mpmakeCli,
          '--mp-quiet',
          `--mp-hosts=${hostList(agents)}`,
          `--mp-report=${reportPath}`,
          ...timeout,
          '-j',
        ],
        dir,
        (line, at) => {
          if (lostAtMs === undefined && LOST.test(line)) lostAtMs = at;
        },
      );
      let ended = false;
      const done = l.done.then((f) => {
        ended = true;
        return f;
      });
      let signalAt: number | undefined;
      let jobsAtSignal: number | undefined;
      if (variant !== 'undisturbed') {
        await delay(options.atMs);
        // Mid-build: wait until the victim runs something.
        while (!ended && childCount(victim.pid) === 0) await delay(10);
        if (!ended) {
          jobsAtSignal = childCount(victim.pid);
          process.kill(victim.pid, variant === 'kill' ? 'SIGKILL' : 'SIGSTOP');
          signalAt = nowMs();
        }
      }
      const f = await done;
      if (f.code !== 0) throw new Error(`mpmake (${variant}) failed (${f.code}): ${f.stderr}`);
      return {
        wallMs: f.wallMs,
        detectMs:
          signalAt !== undefined && lostAtMs !== undefined ? lostAtMs - signalAt : undefined,
        signalAtMs: signalAt !== undefined ? signalAt - l.startMs : undefined,
        jobsAtSignal,
        reruns: readReport(reportPath)?.jobs.retried ?? 0,
        code: f.code,
      };
    } finally {
      await stopAgents(agents);
      agents.forEach((a) => live.delete(a));
    }
  };

  try {
    await sample('undisturbed');
    const variants: Record<Variant, () => Promise<Sample>> = {
      undisturbed: () => sample('undisturbed'),
      kill: () => sample('kill'),
      'stop-5000': () => sample('stop-5000'),
      'stop-1500': () => sample('stop-1500'),
    };
    const results = await interleave(runs, variants, (v, round, r) =>
      process.stderr.write(
        `faults: round ${round + 1}/${runs} ${v}: ${fmt(r.wallMs / 1000)} s wall` +
          (r.signalAtMs !== undefined
            ? `, signal at ${fmt(r.signalAtMs / 1000)} s (${r.jobsAtSignal} jobs there), ` +
              `detected after ${r.detectMs === undefined ? 'never' : `${fmt(r.detectMs / 1000)} s`}, ` +
              `${r.reruns} re-run`
            : '') +
          '\n',
      ),
    );
    const totalSlots = nAgents * slots;
    const idealMs = Math.ceil(units / totalSlots) * sleep * 1000;
    const base0 = median(results.undisturbed.map((r) => r.wallMs));
    const summary = Object.fromEntries(
      (Object.keys(results) as Variant[]).map((v) => {
        const rs = results[v];
        const detect = rs.map((r) => r.detectMs).filter((d): d is number => d !== undefined);
        const wallMs = median(rs.map((r) => r.wallMs));
        return [
          v,
          {
            wallMs,
            extraMs: wallMs - base0,
            detectMs: detect.length ? median(detect) : undefined,
            detected: `${detect.length}/${v === 'undisturbed' ? 0 : rs.length}`,
            signalAtMs:
              v === 'undisturbed' ? undefined : median(rs.map((r) => r.signalAtMs ?? NaN)),
            reruns: median(rs.map((r) => r.reruns)),
          },
        ];
      }),
    ) as Record<
      Variant,
      {
        wallMs: number;
        extraMs: number;
        detectMs: number | undefined;
        detected: string;
        signalAtMs: number | undefined;
        reruns: number;
      }
    >;
    // What losing the slots costs by capacity alone: the rest of the
    // undisturbed build's time, run on the remaining slots.
    const killAt = summary.kill.signalAtMs ?? options.atMs;
    const killCapacityMs = Math.max(0, base0 - killAt) * (totalSlots / (totalSlots - slots) - 1);
    const json = {
      benchmark: 'faults',
      date: new Date().toISOString(),
      machine: machine(),
      loadavg1Before: loadBefore,
      options,
      summary,
      killCapacityMs,
      samples: results,
    };
    const mm = json.machine;
    const s = (ms: number | undefined): string => (ms === undefined ? '-' : fmt(ms / 1000));
    const label: Record<Variant, string> = {
      undisturbed: 'undisturbed',
      kill: 'one agent SIGKILLed',
      'stop-5000': 'one agent SIGSTOPped, heartbeat timeout 5000 ms',
      'stop-1500': 'one agent SIGSTOPped, heartbeat timeout 1500 ms',
    };
    const md =
      `# faults: losing one of ${nAgents} loopback agents × ${slots} slots mid-build\n\n` +
      `${units} × sleep ${sleep} at -j (${totalSlots} slots, ideal ${s(idealMs)} s); the agent is ` +
      `signalled at the first moment after ${options.atMs} ms at which it runs a job. ` +
      `Detection = signal → "lost … running it again" on stderr. Medians of ${runs} interleaved runs ` +
      `(fresh agents each) on ${mm.cpus} CPUs (${mm.cpuModel}), Node ${mm.node}; load average ` +
      `${fmt(loadBefore)} before.\n\n` +
      markdownTable(
        ['variant', 'wall s', 'extra s', 'signal at s', 'detection s', 'detected', 're-runs'],
        (Object.keys(summary) as Variant[]).map((v) => {
          const p = summary[v];
          return [
            label[v],
            s(p.wallMs),
            v === 'undisturbed' ? '-' : s(p.extraMs),
            s(p.signalAtMs),
            s(p.detectMs),
            v === 'undisturbed' ? '-' : p.detected,
            p.reruns,
          ];
        }),
      ) +
      `\nA killed agent's connection drops at once, so detection is immediate; a hung one is ` +
      `found by the heartbeat timeout, and its jobs wait until then. Losing ${slots} of ` +
      `${totalSlots} slots at ${s(killAt)} s costs about ${s(killCapacityMs)} s by capacity ` +
      `alone (the undisturbed build's remaining time, on ${totalSlots - slots} slots instead of ` +
      `${totalSlots}); beyond that, the extra time is the lost jobs' partial work and their re-runs.\n`;
    await publishResults('faults', json, md);
    return json;
  } finally {
    await stopAgents([...live]);
    rmSync(base, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  try {
    const o = numberOptions(process.argv.slice(2), [
      'units',
      'sleep',
      'agents',
      'slots',
      'at-ms',
      'runs',
    ]);
    const d = FAULTS_DEFAULTS;
    await runFaults({
      units: o['units'] ?? d.units,
      sleep: o['sleep'] ?? d.sleep,
      agents: o['agents'] ?? d.agents,
      slots: o['slots'] ?? d.slots,
      atMs: o['at-ms'] ?? d.atMs,
      runs: o['runs'] ?? d.runs,
    });
  } catch (err) {
    process.stderr.write(`faults: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
