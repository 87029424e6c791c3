import type { EventEmitter } from 'node:events';
import type { BuildEvents } from '../coordinator/build-events.js';
import type { BuildReport } from '../coordinator/build-report.js';

/** What observers of a build may read about the cluster while it runs. */
export interface ClusterView {
  /** Per node: id, slots, and its last load report. */
  nodeLoads(): Array<{ id: string; slots: number; running: number; queued: number; loadavg1: number }>;
}

export interface ObserverOptions {
  /** --mp-trace FILE: Chrome trace-event JSON. */
  trace: string | undefined;
  /** Progress line on stderr when it is a terminal and not --mp-quiet. */
  progress: boolean;
}

export interface Observers {
  /** Adds what the observers measured to the report, and closes them. */
  finish(report: BuildReport): void;
}

/** Attaches the build's observers (progress line, trace file) to its events. */
export function attachObservers(
  _events: EventEmitter<BuildEvents>,
  _cluster: ClusterView,
  _options: ObserverOptions,
): Observers {
  return { finish: () => {} };
}
