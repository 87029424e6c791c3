import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileProblem, UsageError } from '../errors.js';
import type { MpmakeOptions } from './options.js';

/**
 * Where `program` would be run from: itself when it has a slash, else the
 * first executable file of that name on PATH; undefined when none.
 */
export function findProgram(program: string, env: NodeJS.ProcessEnv): string | undefined {
  const candidates = program.includes('/')
    ? [program]
    : (env['PATH'] ?? '').split(delimiter).map((d) => join(d || '.', program));
  return candidates.find((c) => {
    try {
      accessSync(c, constants.X_OK);
      return statSync(c).isFile();
    } catch {
      return false;
    }
  });
}

function checkProgram(program: string, from: string, what: string, env: NodeJS.ProcessEnv): void {
  if (findProgram(program, env) !== undefined) return;
  if (!program.includes('/')) {
    throw new UsageError(
      `${from}: ${what} "${program}" is not on PATH; install it or give its full path`,
    );
  }
  let why: string;
  try {
    const info = statSync(program);
    why = info.isFile() ? 'is not executable' : 'is not a file';
  } catch (err) {
    why = fileProblem(err);
  }
  throw new UsageError(`${from}: ${what} ${program} ${why}; give the path of an executable`);
}

/**
 * Checks, before make starts, every option value that names something on
 * this machine: the make and shell programs exist and can run (report and trace
 * paths are checked by parseArgs). Each error names where the value came from.
 */
export function checkOptionValues(options: MpmakeOptions, env: NodeJS.ProcessEnv): void {
  const from = (name: string, dflt: string): string => options.from[name] ?? dflt;
  checkProgram(options.make, from('make', 'the default --mp-make'), 'make program', env);
  if (options.shell !== undefined) {
    checkProgram(options.shell, from('shell', '--mp-shell'), 'shell', env);
  }
}
