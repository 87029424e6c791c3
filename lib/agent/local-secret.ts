import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A secret file made for this process, and the secret it holds. */
export interface LocalSecret {
  /** The file (mode 0600, in a 0700 directory of its own). */
  path: string;
  /** The secret as agents and clients read it from `path`. */
  secret: Buffer;
}

let made: LocalSecret | undefined;

/**
 * This process's throwaway cluster secret, made on first use and removed
 * when the process exits: the agents a program starts for itself (tests,
 * benchmarks) listen with it, so another local user who connects to their
 * loopback port cannot run commands as us (as root, when the suite runs as
 * root).
 */
export function localSecret(): LocalSecret {
  if (made) return made;
  const dir = mkdtempSync(join(tmpdir(), 'mpmake-local-secret-'));
  const path = join(dir, 'secret');
  const text = randomBytes(32).toString('base64');
  writeFileSync(path, `${text}\n`, { mode: 0o600, flag: 'wx' });
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  made = { path, secret: Buffer.from(text) };
  return made;
}
