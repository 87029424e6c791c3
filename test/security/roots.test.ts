/**
 * A job's cwd must be an existing directory under the agent's --root
 * directories, judged by its real path: a symlink inside a root that
 * leads out of it, or `..`, does not get a job out. Probes (which read a
 * file as the agent) are held to the roots too.
 */
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { ErrorMessage, ProbeResultMessage } from '../../lib/protocol/messages.js';
import { startAgent, TestClient } from '../agent/client.js';

t.test('cwd under --root, by real path', async (t) => {
  const dir = t.testdir({ root: { sub: {} }, outside: {}, file: 'x' });
  const root = join(dir, 'root');
  symlinkSync(join(dir, 'outside'), join(root, 'link-out'));
  symlinkSync(join(root, 'sub'), join(dir, 'link-in'));
  const agent = await startAgent(t, { slots: 2, extraArgs: ['--root', root] });
  const client = await TestClient.ready(t, agent.port);
  const marker = (name: string): string => join(dir, 'outside', `ran-${name}`);

  const inside = await client.run(`pwd; touch ${marker('inside')}`, { cwd: join(root, 'sub') });
  t.equal(inside.exit.code, 0);
  t.ok(existsSync(marker('inside')), 'a cwd under the root runs');
  const viaLink = await client.run('pwd -P', { cwd: join(dir, 'link-in') });
  t.equal(viaLink.stdout.toString(), `${join(root, 'sub')}\n`, 'a symlink into the root is fine');

  const refused: [string, string, RegExp][] = [
    ['outside', join(dir, 'outside'), /outside this agent's --root directories/],
    ['symlink-out', join(root, 'link-out'), /outside this agent's --root directories/],
    ['dotdot', join(root, '..', 'outside'), /outside this agent's --root directories/],
    ['missing', join(root, 'nope'), /no such directory/],
    ['file', join(dir, 'file'), /not a directory/],
    ['relative', 'root/sub', /not an absolute path/],
  ];
  for (const [name, cwd, why] of refused) {
    const id = client.submit({ argv: ['/bin/sh', '-c', `touch ${marker(name)}`], cwd });
    const err = await client.waitFor<ErrorMessage>(
      (m) => m.type === 'error' && m.id === id,
      `the refusal of ${name}`,
    );
    t.match(err, { code: 'MPM_ERR_JOB_REFUSED', message: why }, name);
    t.notOk(existsSync(marker(name)), `${name}: nothing ran`);
  }
});

t.test('probes stay under --root and do not follow a symlink', async (t) => {
  const dir = t.testdir({ root: { probe: 'tok' }, outside: { secret: 'tok' } });
  const root = join(dir, 'root');
  symlinkSync(join(dir, 'outside', 'secret'), join(root, 'link'));
  mkdirSync(join(root, 'd'));
  writeFileSync(join(root, 'd', 'p'), 'tok');
  const agent = await startAgent(t, { slots: 1, extraArgs: ['--root', root] });
  const client = await TestClient.ready(t, agent.port);
  let id = 0;
  const probe = async (path: string): Promise<ProbeResultMessage> => {
    const n = ++id;
    client.send({ type: 'probe', id: n, path, content: 'tok' });
    return client.waitFor<ProbeResultMessage>((m) => m.type === 'probe-result' && m.id === n);
  };
  t.match(await probe(join(root, 'probe')), { ok: true });
  t.match(await probe(join(root, 'd', 'p')), { ok: true });
  t.match(await probe(join(dir, 'outside', 'secret')), {
    ok: false,
    reason: /is outside this agent's --root directories/,
  });
  // The launcher opens the link itself (O_PATH | O_NOFOLLOW): not a regular file.
  t.match(await probe(join(root, 'link')), { ok: false, reason: /not a regular file|cannot read/ });
});
