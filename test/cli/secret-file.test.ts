/** mpmake reads the cluster secret exactly as agents do. */
import t from 'tap';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanEnv, runMpmake } from '../helpers/run.js';

t.test('a secret file others can read is refused before anything starts', async (t) => {
  const dir = t.testdir({ Makefile: 'all:\n\t@echo should-not-run\n' });
  const secret = join(dir, 'secret');
  writeFileSync(secret, 'topsecret\n');
  chmodSync(secret, 0o644);
  const r = await runMpmake(['--mp-hosts=127.0.0.1:1/1', `--mp-secret-file=${secret}`], {
    cwd: dir,
    env: cleanEnv(),
  });
  t.equal(r.code, 2);
  t.match(
    r.stderr.toString(),
    /--mp-secret-file: the secret file .*readable or writable by group or others.*chmod 600/,
  );
  t.notMatch(r.stdout.toString(), /should-not-run/);
});
