import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let dir: string | undefined;

/**
 * Writes a job's environment block where only the agent's user can read
 * it, for a launcher that cannot be handed a pipe (node-pty gives the
 * child no descriptor but the terminal). The launcher reads the file while
 * still root and removes it; `removeEnvFile` is the agent's cleanup when
 * the launcher never got that far.
 */
export function writeEnvFile(block: Buffer): string {
  if (dir === undefined) {
    dir = mkdtempSync(join(tmpdir(), 'mpm-agent-env-')); // mode 0700
    const made = dir;
    process.once('exit', () => rmSync(made, { recursive: true, force: true }));
  }
  const path = join(dir, randomBytes(12).toString('hex'));
  writeFileSync(path, block, { flag: 'wx', mode: 0o600 });
  return path;
}

export function removeEnvFile(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone: the launcher read it.
  }
}
