/**
 * F13 (audit 2026-12): the secret file was accepted from any owner (a root
 * agent took a 0600 file another user wrote, so that user chose the
 * secret), a 1-byte secret was accepted, and the file was stat'ed and then
 * read by name. Now: owned by the program's user or root, at least 16
 * bytes, checked and read through one descriptor; every error names where
 * the path came from.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { UsageError } from '../../lib/errors.js';
import { MIN_SECRET_BYTES, readSecretFile } from '../../lib/protocol/secret-file.js';
import { cleanEnv, runMpmake } from '../helpers/run.js';
import { mpm } from '../helpers/security.js';

const GOOD = 'a secret of more than sixteen bytes';
const asRoot = process.geteuid?.() === 0;

function file(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text, { mode: 0o600 });
  return path;
}

t.test('a good file is read; trailing whitespace is not part of the secret', async (t) => {
  const dir = t.testdir();
  t.equal((await readSecretFile(file(dir, 's', `${GOOD}\n`))).toString(), GOOD);
  const link = join(dir, 'link');
  symlinkSync(join(dir, 's'), link);
  t.equal((await readSecretFile(link)).toString(), GOOD, 'through a symlink to a good file');
});

t.test('a secret shorter than 16 bytes is refused, naming the option', async (t) => {
  const dir = t.testdir();
  const one = file(dir, 'one', 'a\n');
  await t.rejects(readSecretFile(one, 'MPMAKE_SECRET_FILE'), {
    constructor: UsageError,
    message: new RegExp(
      `^MPMAKE_SECRET_FILE: the secret file ${one} holds a 1-byte secret; at least 16 bytes`,
    ),
  });
  const edge = file(dir, 'edge', 'x'.repeat(MIN_SECRET_BYTES - 1) + '\n');
  await t.rejects(readSecretFile(edge), { message: /holds a 15-byte secret/ });
  t.equal((await readSecretFile(file(dir, 'ok', 'x'.repeat(MIN_SECRET_BYTES)))).length, 16);
});

t.test('a file owned by another user is refused', { skip: !asRoot && 'needs root' }, async (t) => {
  const dir = t.testdir();
  const evil = file(dir, 'evil', `${GOOD}\n`);
  chownSync(evil, 65534, 65534);
  await t.rejects(readSecretFile(evil), {
    message:
      /^--secret-file: the secret file .*evil is owned by uid 65534, not by this program's user \(uid 0\)/,
  });
  const link = join(dir, 'link');
  symlinkSync(evil, link);
  await t.rejects(readSecretFile(link), { message: /owned by uid 65534/ }, 'nor through a link');

  // The audit's proof: a root agent took such a file as its secret.
  const r = await mpm(
    ['agent', '--listen', '127.0.0.1:0', '--secret-file', evil, '--allow-root'],
    cleanEnv(),
  );
  t.equal(r.code, 2, 'the agent does not start');
  t.match(r.stderr, /--secret-file: the secret file .*evil is owned by uid 65534/);
});

t.test('a FIFO or a directory is refused without hanging', async (t) => {
  const dir = t.testdir({ sub: {} });
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', ['-m', '600', fifo]);
  await t.rejects(readSecretFile(fifo), { message: /fifo is not a regular file/ });
  await t.rejects(readSecretFile(join(dir, 'sub')), { message: /sub is not a regular file/ });
  await t.rejects(readSecretFile(join(dir, 'none'), 'config key "secretFile"'), {
    message: /^config key "secretFile": the secret file .*none does not exist/,
  });
});

t.test('mpmake names where the path came from', async (t) => {
  const dir = t.testdir({ Makefile: 'all:\n\t@echo should-not-run\n' });
  const short = file(dir, 'short', 'abc\n');
  const fromEnv = await runMpmake(['--mp-hosts=127.0.0.1:1/1'], {
    cwd: dir,
    env: cleanEnv({ MPMAKE_SECRET_FILE: short }),
  });
  t.equal(fromEnv.code, 2);
  t.match(
    fromEnv.stderr.toString(),
    /MPMAKE_SECRET_FILE: the secret file .*short holds a 3-byte secret/,
  );
  t.notMatch(fromEnv.stdout.toString(), /should-not-run/);
  chmodSync(short, 0o640);
  const fromFlag = await runMpmake(['--mp-hosts=127.0.0.1:1/1', `--mp-secret-file=${short}`], {
    cwd: dir,
    env: cleanEnv(),
  });
  t.match(
    fromFlag.stderr.toString(),
    /--mp-secret-file: the secret file .*short is readable or writable by group/,
  );
});
