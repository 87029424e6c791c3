#!/usr/bin/env node
// mpmake: GNU make, with every recipe line run on the cluster. Thin: parse
// nothing here, call the library, turn its result into an exit status.
import { MpmakeError } from '../lib/errors.js';
import { runMpmake } from '../lib/coordinator/mpmake.js';

try {
  const result = await runMpmake(process.argv.slice(2), process.env);
  if (result.signal) {
    process.removeAllListeners(result.signal);
    process.kill(process.pid, result.signal);
  }
  process.exitCode = result.code ?? 1;
} catch (err) {
  if (err instanceof MpmakeError) {
    process.stderr.write(`mpmake: ${err.message} [${err.code}]\n`);
    process.exitCode = 2;
  } else throw err;
}
