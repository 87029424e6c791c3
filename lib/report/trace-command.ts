import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../output-file.js';
import { fileProblem, TraceFileError, UsageError } from '../errors.js';
import { analyseTrace, saturationNote } from './trace-analysis.js';
import { readTraceModel } from './trace-model.js';
import { renderTraceSvg } from './trace-svg.js';

export interface TraceCommandOptions {
  /** The trace file (`mpmake --mp-trace FILE`). */
  file: string;
  /** Where to write the SVG picture. */
  svg?: string | undefined;
}

/** Longest critical-path listing printed. */
const SUMMARY_MAX = 30;

const seconds = (us: number): string => `${(us / 1e6).toFixed(2)} s`;

/** The trace in a few lines: jobs, parallelism, and the critical path. */
export function traceSummary(json: unknown): string {
  const model = readTraceModel(json);
  const a = analyseTrace(model);
  const lines = [
    `${model.jobs.length} jobs on ${model.nodes.length} nodes; make ran ${seconds(a.endUs)}; ` +
      `jobs running at once: peak ${a.parallelism.peak}, mean ${a.parallelism.mean.toFixed(2)}` +
      (model.slots !== undefined ? ` of ${model.slots} slots` : ''),
    `critical path: ${a.critical.length} jobs, ${seconds(a.criticalUs)}:`,
    ...a.critical
      .slice(0, SUMMARY_MAX)
      .map((j) => `  ${seconds(j.endUs - j.startUs).padStart(9)}  ${j.name}`),
  ];
  if (a.critical.length > SUMMARY_MAX) {
    lines.push(`  … and ${a.critical.length - SUMMARY_MAX} more (see --svg)`);
  }
  const note = saturationNote(a, model.slots);
  if (note !== undefined) lines.push(note);
  return lines.join('\n') + '\n';
}

const WHAT_TO_GIVE = 'give the file a build wrote with mpmake --mp-trace=FILE';

/** The trace file's JSON; a clear error (MPM_ERR_TRACE) naming the file when there is none. */
function readTraceFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new TraceFileError(`the trace file ${file} ${fileProblem(err)}; ${WHAT_TO_GIVE}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new TraceFileError(`the trace file ${file} is not JSON; ${WHAT_TO_GIVE}`);
  }
}

/**
 * `mpm trace FILE [--svg OUT]`: prints what the trace says (parallelism,
 * critical path) and, with --svg, draws it. Resolves to the exit status.
 */
export async function runTraceCommand(options: TraceCommandOptions): Promise<number> {
  if (options.svg === '') throw new UsageError('--svg needs a file name');
  const json = readTraceFile(options.file);
  let summary: string;
  try {
    summary = traceSummary(json);
  } catch (err) {
    throw new TraceFileError(`${options.file} is ${(err as Error).message}; ${WHAT_TO_GIVE}`);
  }
  process.stdout.write(summary);
  if (options.svg !== undefined) {
    const svg = renderTraceSvg(json);
    writeFileAtomic(options.svg, svg);
    process.stdout.write(`wrote ${options.svg}\n`);
  }
  return 0;
}
