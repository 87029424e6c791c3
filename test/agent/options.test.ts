import { spawn } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { isLoopbackHost, parseListen, resolveAgentOptions } from '../../lib/agent/agent-options.js';
import { packageRoot } from '../../lib/agent/package-root.js';
import { withoutTapHooks } from '../helpers/run.js';
import { startAgent, TestClient } from './client.js';

/** Runs `mpm ARGS` to its end; for options that must fail before listening. */
function mpm(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [join(packageRoot(), 'dist/cli/mpm.js'), ...args], {
    env: { ...withoutTapHooks(), ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

t.test('parseListen', async (t) => {
  t.same(parseListen('127.0.0.1:7543'), { host: '127.0.0.1', port: 7543 });
  t.same(parseListen('[::1]:0'), { host: '::1', port: 0 });
  t.same(parseListen('node-3.example:80'), { host: 'node-3.example', port: 80 });
  for (const bad of ['127.0.0.1', ':80', '1.2.3.4:70000', 'host:port', '::1:80']) {
    t.throws(() => parseListen(bad), { code: 'MPM_ERR_USAGE', message: /--listen/ }, bad);
  }
});

t.test('isLoopbackHost', async (t) => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1']) {
    t.ok(isLoopbackHost(h), h);
  }
  for (const h of ['0.0.0.0', '10.0.0.1', '::', 'node-1', '128.0.0.1'])
    t.notOk(isLoopbackHost(h), h);
});

t.test('resolveAgentOptions names the option in each error', async (t) => {
  await t.rejects(resolveAgentOptions({ slots: '0' }), {
    message: /--slots must be a positive integer/,
  });
  await t.rejects(resolveAgentOptions({ slots: '2.5' }), { message: /--slots/ });
  await t.rejects(resolveAgentOptions({ maxQueuedPerClient: 'x' }), {
    message: /--max-queued-per-client must be a positive integer/,
  });
  await t.rejects(resolveAgentOptions({ root: ['relative'] }), { message: /--root/ });
  await t.rejects(resolveAgentOptions({ root: ['/no/such/dir'] }), { message: /--root/ });
  await t.rejects(resolveAgentOptions({ id: ' ' }), { message: /--name/ });
  const ok = await resolveAgentOptions({ listen: '127.0.0.1:0', slots: '3' });
  t.match(ok, { host: '127.0.0.1', port: 0, slots: 3, roots: ['/'], maxQueuedPerClient: 4096 });
  const insecure = await resolveAgentOptions({ listen: '0.0.0.0:0', insecure: true });
  t.equal(insecure.secret, undefined);
});

t.test('mpm agent refuses a non-loopback address without a secret (exit 2)', async (t) => {
  const r = await mpm(['agent', '--listen', '0.0.0.0:0', '--slots', '1']);
  t.equal(r.code, 2);
  t.equal(r.stdout, '');
  t.match(r.stderr, /^mpm agent: refusing to listen on 0\.0\.0\.0:0.*--secret-file.*--insecure/);
});

t.test('mpm agent refuses a secret file others can read', async (t) => {
  const dir = t.testdir();
  const file = join(dir, 'secret');
  writeFileSync(file, 's3cret\n');
  chmodSync(file, 0o644);
  const r = await mpm(['agent', '--listen', '127.0.0.1:0', '--secret-file', file]);
  t.equal(r.code, 2);
  t.match(
    r.stderr,
    /--secret-file: the secret file .*readable or writable by group or others \(mode 0644\).*chmod 600/,
  );
  chmodSync(file, 0o600);
  writeFileSync(join(dir, 'empty'), '\n', { mode: 0o600 });
  const empty = await mpm([
    'agent',
    '--listen',
    '127.0.0.1:0',
    '--secret-file',
    join(dir, 'empty'),
  ]);
  t.match(empty, { code: 2, stderr: /is empty/ });
});

t.test('mpm agent: bad options exit 2 and name the option, in the one format', async (t) => {
  t.same(await mpm(['agent', '--slots', 'many']), {
    code: 2,
    stdout: '',
    stderr: 'mpm agent: --slots must be a positive integer, got "many" [MPM_ERR_USAGE]\n',
  });
  t.same(await mpm(['agent', '--listen', 'nowhere']), {
    code: 2,
    stdout: '',
    stderr:
      'mpm agent: --listen must be HOST:PORT (e.g. 127.0.0.1:7543), got nowhere [MPM_ERR_USAGE]\n',
  });
  // issue-16: yargs's own errors, after the usage, end in the same format,
  // naming the command and each unknown option as typed (yargs said
  // "Unknown argument: bogus", "such" for --no-such, "bogus-thing,
  // bogusThing" for --bogus-thing, in the user's language).
  const lastLine = async (args: string[], env?: Record<string, string>): Promise<string> => {
    const r = await mpm(args, env);
    t.equal(r.code, 2, `${args.join(' ')}: exit 2`);
    return r.stderr.trimEnd().split('\n').pop()!;
  };
  t.equal(
    await lastLine(['agent', '--bogus']),
    'mpm agent: unknown option --bogus; see the usage above [MPM_ERR_USAGE]',
  );
  t.equal(
    await lastLine(['status', '--bogus-thing=1', '-z', '--no-such', 'extra']),
    'mpm status: unknown options --bogus-thing, -z, --no-such; unexpected argument extra; ' +
      'see the usage above [MPM_ERR_USAGE]',
  );
  t.equal(
    await lastLine(['frob'], { LANG: 'de_DE.UTF-8', LC_ALL: 'de_DE.UTF-8' }),
    'mpm: unknown command frob; the commands are agent, trace, status, top, exec, demo; ' +
      'see the usage above [MPM_ERR_USAGE]',
  );
  const none = await mpm([]);
  t.equal(none.code, 2);
  t.equal(
    none.stderr.trimEnd().split('\n').pop(),
    'mpm: name a command; see the usage above [MPM_ERR_USAGE]',
  );
});

t.test('the listening line, default id, and an address in use', async (t) => {
  const agent = await startAgent(t, { slots: 2 });
  t.match(agent.id, new RegExp(`:${agent.port}$`), 'id defaults to HOSTNAME:PORT');
  const client = await TestClient.connect(t, agent.port);
  t.equal((await client.authenticate()).nodeId, agent.id);
  // --allow-root: a test run as root (a container) must reach the listen step.
  const r = await mpm([
    'agent',
    '--listen',
    `127.0.0.1:${agent.port}`,
    '--slots',
    '1',
    '--allow-root',
  ]);
  t.match(r, { code: 2, stderr: /--listen 127\.0\.0\.1:\d+: .*EADDRINUSE/ });
});
