/**
 * Helpers for the security tests: secret files, an agent's log lines, and
 * `mpm` run to its end.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalAgent } from '../../lib/agent/spawn-agent.js';
import { packageRoot } from '../../lib/agent/package-root.js';
import { newChallenge } from '../../lib/protocol/auth.js';
import { encodeFrame } from '../../lib/protocol/frame-codec.js';
import { PROTOCOL_VERSION } from '../../lib/protocol/messages.js';
import { withoutTapHooks } from './run.js';

/** Writes `secret` (plus the newline an editor leaves) to DIR/NAME, mode 0600. */
export function secretFile(dir: string, secret: string, name = 'secret'): string {
  const file = join(dir, name);
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return file;
}

/** Collects what an agent writes on stderr from now on (its log). */
export function agentLog(agent: LocalAgent): { text(): string } {
  let text = '';
  agent.process.stderr!.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  return { text: () => text };
}

/** Runs `mpm ARGS` to its end (for options that fail before listening). */
export function mpm(
  args: string[],
  env: NodeJS.ProcessEnv = withoutTapHooks(),
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [join(packageRoot(), 'dist/cli/mpm.js'), ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

/** Resolves once `cond()` holds, polling; rejects after `ms`. */
export async function waitUntil(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The hello a rogue "agent" opens with: it asks for a proof and names itself rogue. */
export function rogueHello(): Buffer {
  return encodeFrame({
    type: 'hello',
    version: PROTOCOL_VERSION,
    challenge: newChallenge(),
    authRequired: true,
    nodeId: 'rogue',
  });
}
