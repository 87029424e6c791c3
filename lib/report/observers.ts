import type { EventEmitter } from 'node:events';
import type { BuildEvents } from '../coordinator/build-events.js';
import type { BuildReport } from '../coordinator/build-report.js';
import { jobSpan, type JobSpan } from './job-span.js';
import { parallelism } from './parallelism.js';
import { ProgressLine } from './progress-line.js';
import { assignLanes } from './slot-lanes.js';
import { buildTrace, writeTraceFile } from './trace-writer.js';

/** What observers of a build may read about the cluster while it runs. */
export interface ClusterView {
  /** Per node: id, slots, and its last load report. */
  nodeLoads(): Array<{
    id: string;
    slots: number;
    running: number;
    queued: number;
    loadavg1: number;
  }>;
}

export interface ObserverOptions {
  /** --mp-trace FILE: Chrome trace-event JSON. */
  trace: string | undefined;
  /** Progress line on stderr when it is a terminal and not --mp-quiet. */
  progress: boolean;
  /** How many lines the build is expected to have, and where that figure comes from. */
  expected?: { total: number; from: string } | undefined;
  /** Without `expected`: why there is no total. */
  noTotal?: string | undefined;
  /** The clock (ms since epoch); Date.now unless a test injects one. */
  now?: () => number;
}

export interface Observers {
  /** Adds what the observers measured to the report, and closes them. */
  finish(report: BuildReport): void;
}

/** How often the progress line may be redrawn (5 times a second). */
const PROGRESS_TICK_MS = 200;

/**
 * Attaches the build's observers (progress line, trace file) to its events.
 * Every job is recorded; at `finish` the report gets the build's
 * parallelism and, with a trace file, the trace is written whole.
 */
export function attachObservers(
  events: EventEmitter<BuildEvents>,
  cluster: ClusterView,
  options: ObserverOptions,
): Observers {
  const now = options.now ?? Date.now;
  const originMs = now();
  // The nodes as they were when make started: the trace's pids follow them.
  const nodes = cluster.nodeLoads().map((n) => ({ id: n.id, slots: n.slots }));
  const spans: JobSpan[] = [];
  const onEnd = (ev: BuildEvents['job-end'][0]): void => {
    spans.push(jobSpan(ev));
  };
  events.on('job-end', onEnd);

  let progress: ProgressLine | undefined;
  let timer: NodeJS.Timeout | undefined;
  const onProgressStart = (ev: BuildEvents['job-start'][0]): void => progress?.jobStart(ev);
  const onProgressEnd = (ev: BuildEvents['job-end'][0]): void => progress?.jobEnd(ev);
  const onProgressOutput = (): void => progress?.activity();
  if (options.progress) {
    progress = new ProgressLine({
      now,
      write: (text) => process.stderr.write(text),
      columns: () => process.stderr.columns ?? 0,
      nodes: () => cluster.nodeLoads(),
      expected: options.expected,
      noTotal: options.noTotal,
    });
    events.on('job-start', onProgressStart);
    events.on('job-output', onProgressOutput);
    events.on('job-end', onProgressEnd);
    timer = setInterval(() => progress?.tick(), PROGRESS_TICK_MS);
    timer.unref();
  }

  return {
    finish(report) {
      const endMs = now();
      events.off('job-end', onEnd);
      if (progress) {
        clearInterval(timer);
        events.off('job-start', onProgressStart);
        events.off('job-end', onProgressEnd);
        events.off('job-output', onProgressOutput);
        progress.finish();
      }
      const slotsOf = (id: string): number => nodes.find((n) => n.id === id)?.slots ?? 1;
      const laned = assignLanes(spans, slotsOf);
      const measured = parallelism(
        laned.map((l) => ({ start: l.startMs, end: l.endMs })),
        { from: originMs, to: endMs },
      );
      report.parallelism = measured;
      if (options.trace !== undefined) {
        const trace = buildTrace({
          originMs,
          endMs,
          nodes,
          spans,
          laned,
          report: { ...report, parallelism: measured },
        });
        try {
          writeTraceFile(options.trace, trace);
        } catch (err) {
          // The build's result stands; the missing trace is worth one line.
          process.stderr.write(
            `mpmake: cannot write the trace ${options.trace}: ${(err as Error).message}\n`,
          );
        }
      }
    },
  };
}
