import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { ErrorMessage } from '../../lib/protocol/messages.js';
import { startAgent, TestClient } from './client.js';

t.test('jobs on pipes', async (t) => {
  const agent = await startAgent(t, { slots: 4 });
  const client = await TestClient.ready(t, agent.port);

  t.test('stdout and stderr are separate and binary-safe', async (t) => {
    const dir = t.testdir();
    const out = randomBytes(1024 * 1024 + 17);
    const err = Buffer.concat([Buffer.from([0, 255, 13, 10, 13]), randomBytes(300_000)]);
    writeFileSync(join(dir, 'out'), out);
    writeFileSync(join(dir, 'err'), err);
    const r = await client.run('cat out; cat err >&2; printf tail', { cwd: dir });
    t.equal(r.exit.code, 0);
    t.ok(r.stdout.equals(Buffer.concat([out, Buffer.from('tail')])), 'stdout byte for byte');
    t.ok(r.stderr.equals(err), 'stderr byte for byte');
  });

  t.test('exit codes, and death by a signal', async (t) => {
    for (const code of [0, 3, 255]) {
      const r = await client.run(`exit ${code}`);
      t.match(r.exit, { code, signal: null }, `exit ${code}`);
      t.ok(r.exit.runMs >= 0 && r.exit.queuedMs >= 0);
    }
    const r = await client.run('kill -TERM $$; sleep 5');
    t.match(r.exit, { code: null, signal: 'SIGTERM' });
  });

  t.test('argv is passed exactly', async (t) => {
    const content = [
      `single ' double " dollar $HOME \${x} backtick \` semicolon ; star *`,
      'backslash-newline \\',
      'continues here; tab\there',
      'UTF-8: héllo wörld ✓ 日本語 🚀',
    ].join('\n');
    const filler = 'x'.repeat(100 * 1024 - content.length);
    const body = `${content}\n${filler}`;
    const line = `cat <<'MPM_EOF'\n${body}\nMPM_EOF`;
    t.ok(Buffer.byteLength(line) > 100 * 1024, 'a 100 KiB line');
    const r = await client.result(client.submit({ argv: ['/bin/sh', '-c', line] }));
    t.equal(r.exit.code, 0, r.stderr.toString());
    t.equal(r.stdout.toString('utf8'), `${body}\n`);

    const words = await client.result(
      client.submit({
        argv: ['/bin/sh', '-c', 'printf "%s|" "$0" "$@"', 'zero', 'a b', '', "it's", '$x', 'é\n'],
      }),
    );
    t.equal(words.stdout.toString(), "zero|a b||it's|$x|é\n|");
  });

  t.test('arguments and env values sent as raw bytes arrive as those bytes', async (t) => {
    const latin1 = Buffer.from('caf\xe9 100% \\n $HOME "q" \n\n', 'latin1');
    const r = await client.result(
      client.submit({
        argv: [
          '/bin/sh',
          '-c',
          Buffer.from('printf "%s|" "$1" "$2"; printf "%s" "$LAT"'),
          'x',
          latin1,
          'plain',
        ],
        env: { PATH: '/usr/bin:/bin', LAT: latin1 },
      }),
    );
    t.equal(r.exit.code, 0, r.stderr.toString());
    t.ok(
      r.stdout.equals(Buffer.concat([latin1, Buffer.from('|plain|'), latin1])),
      JSON.stringify(r.stdout.toString('latin1')),
    );
  });

  t.test('mergeOutput puts stderr into stream 1, in order', async (t) => {
    const r = await client.run('echo 1; echo 2 >&2; echo 3; echo 4 >&2', { mergeOutput: true });
    t.equal(r.stdout.toString(), '1\n2\n3\n4\n');
    t.equal(r.stderr.length, 0);
  });

  t.test('umask applies to the files a job creates', async (t) => {
    const dir = t.testdir();
    const r = await client.run('touch f && mkdir d', { cwd: dir, umask: 0o027 });
    t.equal(r.exit.code, 0, r.stderr.toString());
    t.equal(statSync(join(dir, 'f')).mode & 0o777, 0o640);
    t.equal(statSync(join(dir, 'd')).mode & 0o777, 0o750);
    const r2 = await client.run('umask', { umask: 0o002 });
    t.equal(r2.stdout.toString().trim(), '0002');
  });

  t.test('the job gets exactly the given env, plus MPMAKE_NODE', async (t) => {
    const r = await client.run(
      'printf "%s|%s|%s|%s" "$FOO" "${MPMAKE_REMOTE-unset}" "${HOME-unset}" "${MPMAKE_NODE:+node}"',
      { env: { PATH: '/usr/bin:/bin', FOO: 'bar baz\nqux' } },
    );
    t.equal(r.stdout.toString(), 'bar baz\nqux|unset|unset|node');
  });

  t.test('a background child holding the pipe does not hold up the exit', async (t) => {
    const dir = t.testdir();
    const r = await client.run('sleep 300 & echo $! > pid; echo early', { cwd: dir });
    const pid = Number(readFileSync(join(dir, 'pid'), 'utf8'));
    t.teardown(() => process.kill(pid, 'SIGKILL'));
    t.match(r.exit, { code: 0, signal: null });
    t.equal(r.stdout.toString(), 'early\n');
  });

  t.test('stdin is /dev/null', async (t) => {
    const r = await client.run('cat; echo done');
    t.equal(r.stdout.toString(), 'done\n');
  });

  t.test(
    'argv[0] is the shell: bash runs bash syntax',
    { skip: !existsSync('/bin/bash') },
    async (t) => {
      const r = await client.result(
        client.submit({
          argv: ['/bin/bash', '-c', 'a=(1 2 3); echo ${#a[@]} $((2**10)); [[ x == x ]] && echo ok'],
        }),
      );
      t.equal(r.stdout.toString(), '3 1024\nok\n', r.stderr.toString());
    },
  );

  t.test('a missing shell fails like a shell would', async (t) => {
    const r = await client.result(client.submit({ argv: ['/no/such/shell', '-c', 'true'] }));
    t.equal(r.exit.code, 127);
    t.match(r.stderr.toString(), /no\/such\/shell/);
  });

  t.test('refusals: duplicate id, bad cwd, huge env', async (t) => {
    const refusal = (id: number): Promise<ErrorMessage> =>
      client.waitFor<ErrorMessage>((m) => m.type === 'error' && m.id === id, `refusal of ${id}`);

    const first = client.submit({ id: 9001, argv: ['/bin/sh', '-c', 'sleep 0.3; echo first'] });
    client.submit({ id: 9001, argv: ['/bin/sh', '-c', 'echo second'] });
    t.match(await refusal(9001), {
      code: 'MPM_ERR_JOB_REFUSED',
      refusal: 'invalid-job',
      message: /already in use/,
    });
    t.equal((await client.result(first)).stdout.toString(), 'first\n', 'the first still runs');

    const missing = client.submit({ argv: ['/bin/true'], cwd: '/no/such/dir' });
    t.match(await refusal(missing), {
      refusal: 'no-cwd',
      message: /no such directory: \/no\/such\/dir/,
    });

    const file = join(t.testdir({ f: '' }), 'f');
    const notDir = client.submit({ argv: ['/bin/true'], cwd: file });
    t.match(await refusal(notDir), { refusal: 'no-cwd', message: /not a directory/ });

    const env = { PATH: '/bin', BIG: 'x'.repeat(1024 * 1024) };
    const huge = client.submit({ argv: ['/bin/true'], env });
    t.match(await refusal(huge), { refusal: 'invalid-job', message: /environment is \d+ bytes/ });

    const nul = client.submit({ argv: ['/bin/sh', '-c', 'echo a\0b'] });
    t.match(await refusal(nul), { refusal: 'invalid-job', message: /NUL/ });

    for (const id of [missing, notDir, huge, nul]) {
      t.notOk(
        client.messages.some((m) => m.type === 'exit' && m.id === id),
        `no exit for ${id}`,
      );
    }
  });
});

t.test('cwd must be under a --root', async (t) => {
  const dir = t.testdir({ allowed: { sub: {} }, other: {} });
  symlinkSync(join(dir, 'other'), join(dir, 'allowed', 'escape'));
  mkdirSync(join(dir, 'allowed2'));
  const agent = await startAgent(t, {
    slots: 1,
    extraArgs: ['--root', join(dir, 'allowed'), '--root', join(dir, 'allowed2')],
  });
  const client = await TestClient.ready(t, agent.port);
  const ok = await client.run('pwd', { cwd: join(dir, 'allowed', 'sub') });
  t.equal(ok.stdout.toString(), `${join(dir, 'allowed', 'sub')}\n`);
  t.equal((await client.run('true', { cwd: join(dir, 'allowed2') })).exit.code, 0);

  for (const cwd of [join(dir, 'other'), join(dir, 'allowed', 'escape'), dir, '/']) {
    const id = client.submit({ argv: ['/bin/sh', '-c', 'touch marker'], cwd });
    const err = await client.waitFor<ErrorMessage>((m) => m.type === 'error' && m.id === id);
    t.match(
      err,
      {
        code: 'MPM_ERR_JOB_REFUSED',
        refusal: 'outside-roots',
        message: /outside this agent's --root/,
      },
      cwd,
    );
  }
  t.notOk(existsSync(join(dir, 'other', 'marker')));
});

t.test('--max-queued-per-client refuses jobs beyond the limit', async (t) => {
  const agent = await startAgent(t, { slots: 1, extraArgs: ['--max-queued-per-client', '2'] });
  const client = await TestClient.ready(t, agent.port);
  const ids = [1, 2, 3, 4].map(() => client.submit({ argv: ['/bin/sh', '-c', 'sleep 0.2'] }));
  const err = await client.waitFor<ErrorMessage>((m) => m.type === 'error');
  t.match(err, {
    id: ids[3],
    code: 'MPM_ERR_JOB_REFUSED',
    refusal: 'queue-limit',
    message: /--max-queued-per-client/,
  });
  for (const id of ids.slice(0, 3)) t.equal((await client.result(id)).exit.code, 0);
});
