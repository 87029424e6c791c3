/**
 * `mpm agent --auth munge` (issue 15): one root agent (TLS), two users
 * building at once, each proving its uid with a MUNGE credential from a
 * munged this test starts (its own key and socket). Every output belongs
 * to its user, lines kept on the client and lines run on the agent alike;
 * a job cannot read another user's 0600 file, as locally; a forged, a
 * replayed and a relayed credential are refused, and so is root unless the
 * agent allows it, and a uid below --min-uid. Needs root (users, an agent
 * that switches to them) and MUNGE.
 */
import { spawn } from 'node:child_process';
import { chownSync, copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { nativeLauncher } from '../../lib/agent/job-command.js';
import { localSecret } from '../../lib/agent/local-secret.js';
import { packageRoot } from '../../lib/agent/package-root.js';
import type { RunAs } from '../../lib/agent/run-as.js';
import { authFor } from '../../lib/client/agent-dial.js';
import { channelBinding, clientPayload, mungeEncode } from '../../lib/protocol/munge.js';
import type { ErrorMessage, HelloMessage, WelcomeMessage } from '../../lib/protocol/messages.js';
import { connectTls } from '../../lib/protocol/tls.js';
import type { HandshakeBinding } from '../../lib/protocol/auth.js';
import { startAgent, TestClient } from '../agent/client.js';
import {
  mungeAgentArgs,
  mungeAs,
  mungeClientEnv,
  mungeSkip,
  startMunged,
} from '../helpers/munge.js';
import { makeTestUser, runuserArgs, usersSkip } from '../helpers/users.js';

const skip =
  usersSkip() || mungeSkip() || (nativeLauncher() ? false : 'needs build/mpmake-exec (make build)');
const client = { user: 'test', host: 'test', pid: process.pid, build: 'munge-test' };

/** Runs `argv` as `user` with a clean environment; resolves with its status and output. */
function runAs(
  user: RunAs,
  argv: string[],
  env: Record<string, string>,
  cwd: string,
): Promise<{ code: number | null; out: string }> {
  const vars = { HOME: `/home/${user.name}`, PATH: '/usr/bin:/bin', ...env };
  const child = spawn('runuser', runuserArgs(user.name, vars, argv), {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, out })));
}

t.test('MUNGE: jobs run as the user who started the build', { skip }, async (t) => {
  const munged = await startMunged(t);
  const alice = await makeTestUser(t, 'mpma');
  const bob = await makeTestUser(t, 'mpmb');
  // TLS keyed by the cluster secret; MUNGE says who each client is.
  const agent = await startAgent(t, { slots: 4, extraArgs: [...mungeAgentArgs(munged), '--tls'] });
  const mpmake = join(packageRoot(), 'dist', 'cli', 'mpmake.js');
  /** Each user's own copy of the cluster secret (a secret file must be its reader's). */
  const secretOf = (u: RunAs): string => {
    const path = `/home/${u.name}/mpmake-secret`;
    copyFileSync(localSecret().path, path);
    chownSync(path, u.uid, u.gid);
    return path;
  };
  const envOf = (u: RunAs): Record<string, string> => ({
    ...mungeClientEnv(munged),
    MPMAKE_TLS: '1',
    MPMAKE_SECRET_FILE: secretOf(u),
    MPMAKE_HOSTS: `127.0.0.1:${agent.port}/4`,
  });

  await t.test('two users build at once: each one owns its files, and only its own', async (t) => {
    const targets = ['o1', 'o2', 'o3', 'o4', 'o5', 'o6'];
    const projects = new Map<RunAs, string>();
    for (const [me, other] of [
      [alice, bob],
      [bob, alice],
    ] as const) {
      const proj = join(`/home/${me.name}`, 'proj');
      mkdirSync(proj);
      writeFileSync(join(proj, 'private'), `${me.name}'s secret\n`, { mode: 0o600 });
      writeFileSync(
        join(proj, 'Makefile'),
        `all: ${targets.join(' ')} kept peek\n` +
          `${targets.join(' ')}:\n\tid -un > $@; id -G >> $@; echo "$$MPMAKE_NODE" >> $@\n` +
          // touch is on the client's local list: it runs in mpmake, as the user.
          'kept:\n\ttouch $@\n' +
          `peek:\n\tcat /home/${other.name}/proj/private > $@ 2>&1 || true\n`,
      );
      for (const f of ['', 'private', 'Makefile']) chownSync(join(proj, f), me.uid, me.gid);
      projects.set(me, proj);
    }
    const users = [alice, bob];
    const results = await Promise.all(
      users.map((u) =>
        runAs(u, [process.execPath, mpmake, '--mp-no-fallback', '-j6'], envOf(u), projects.get(u)!),
      ),
    );
    for (const [i, u] of users.entries()) {
      const r = results[i]!;
      t.equal(r.code, 0, `${u.name}'s build: ${r.out}`);
      const proj = projects.get(u)!;
      for (const f of [...targets, 'kept', 'peek']) {
        t.equal(statSync(join(proj, f)).uid, u.uid, `${u.name}/${f} belongs to ${u.name}`);
      }
      const [name, groups, node] = readFileSync(join(proj, 'o1'), 'utf8').split('\n');
      t.equal(name, u.name, 'the job ran as the user');
      t.same(groups!.split(' ').map(Number).sort(), [...u.groups].sort(), "with the user's groups");
      t.equal(node, agent.id, 'on the agent');
      const peek = readFileSync(join(proj, 'peek'), 'utf8');
      t.match(peek, /Permission denied/, "the other user's 0600 file is not readable");
      t.notMatch(peek, /secret/, 'and nothing of it came through');
    }
    const local = await runAs(alice, ['cat', `/home/${bob.name}/proj/private`], {}, '/');
    t.match(local.out, /Permission denied/, 'as it is not locally either');
  });

  /**
   * Connects over TLS and sends an auth (with the secret's proof) carrying
   * `credential(binding, channel)`; resolves with the answer.
   */
  const tryAuth = async (
    t: Test,
    port: number,
    tls: boolean,
    credential: (binding: HandshakeBinding, channel: Uint8Array) => Promise<string>,
  ): Promise<{ answer: WelcomeMessage | ErrorMessage; sent: string }> => {
    const c = tls
      ? await TestClient.attach(
          t,
          connectTls('127.0.0.1', port, localSecret().secret),
          'secureConnect',
        )
      : await TestClient.attach(t, connect({ host: '127.0.0.1', port }));
    const hello = await c.waitFor<HelloMessage>((m) => m.type === 'hello');
    t.equal(hello.munge, true, 'the hello says MUNGE');
    const { auth, binding } = authFor(localSecret().secret, hello, c.socket, client, true);
    const sent = await credential(binding!, channelBinding(c.socket));
    c.send({ ...auth, munge: sent });
    const answer = await c.waitFor<WelcomeMessage | ErrorMessage>(
      (m) => m.type === 'welcome' || m.type === 'error',
    );
    return { answer, sent };
  };
  const as = (u: RunAs) => (b: HandshakeBinding, ch: Uint8Array) =>
    mungeAs(munged, u.name, clientPayload(b, ch));
  const asRoot = (b: HandshakeBinding, ch: Uint8Array): Promise<string> =>
    mungeEncode(clientPayload(b, ch), munged.socket);

  await t.test('forged, replayed, relayed and root credentials are refused', async (t) => {
    const ok = await tryAuth(t, agent.port, true, as(alice));
    t.match(ok.answer, { type: 'welcome' }, 'a good credential is taken');
    t.type((ok.answer as WelcomeMessage).munge, 'string', 'and the agent shows its own');

    const forged = await tryAuth(t, agent.port, true, async () =>
      Promise.resolve('MUNGE:AwQFAAB0aGlzIGlzIG5vdCBhIGNyZWRlbnRpYWw=:'),
    );
    t.match(forged.answer, { type: 'error', code: 'MPM_ERR_MUNGE_CRED', message: /not a valid/ });
    const replayed = await tryAuth(t, agent.port, true, () => Promise.resolve(ok.sent));
    t.match(
      replayed.answer,
      { type: 'error', code: 'MPM_ERR_MUNGE_CRED', message: /replayed/ },
      'replayed on a new connection',
    );
    const relayed = await tryAuth(t, agent.port, true, (b, ch) =>
      as(alice)({ ...b, endpoint: `127.0.0.9:${agent.port}` }, ch),
    );
    t.match(
      relayed.answer,
      { type: 'error', code: 'MPM_ERR_MUNGE_CRED', message: /not made for this connection/ },
      'a credential for another address (a relay) is refused',
    );
    const otherTls = await tryAuth(t, agent.port, true, (b) => as(alice)(b, new Uint8Array(32)));
    t.match(
      otherTls.answer,
      { type: 'error', code: 'MPM_ERR_MUNGE_CRED' },
      'one for another TLS session (a man in the middle holding the secret) is refused',
    );
    const root = await tryAuth(t, agent.port, true, asRoot);
    t.match(
      root.answer,
      { type: 'error', code: 'MPM_ERR_UID_REFUSED', message: /--allow-root/ },
      'uid 0 refused',
    );

    // One more agent (plaintext): root allowed, alice's uid below its --min-uid.
    const other = await startAgent(t, {
      slots: 1,
      extraArgs: [...mungeAgentArgs(munged), '--allow-root', '--min-uid', String(alice.uid + 100)],
    });
    const allowed = await tryAuth(t, other.port, false, asRoot);
    t.match(allowed.answer, { type: 'welcome' }, 'uid 0 with --allow-root');
    const below = await tryAuth(t, other.port, false, as(alice));
    t.match(below.answer, { type: 'error', code: 'MPM_ERR_UID_REFUSED', message: /--min-uid/ });
  });

  await t.test('mpm status dials the same way', async (t) => {
    const mpm = join(packageRoot(), 'dist', 'cli', 'mpm.js');
    const r = await runAs(alice, [process.execPath, mpm, 'status', '--json'], envOf(alice), '/');
    t.equal(r.code, 0, r.out);
    t.match(JSON.parse(r.out), [{ state: 'up' }], 'the agent is up for alice');
  });

  await t.test('a client without MPMAKE_AUTH=munge is told what to set', async (t) => {
    const env = { ...envOf(alice), MPMAKE_AUTH: 'secret', MPMAKE_MUNGE_SOCKET: '' };
    const r = await runAs(
      alice,
      [process.execPath, mpmake, '--mp-no-fallback', '-f', '/dev/null', 'x'],
      env,
      `/home/${alice.name}`,
    );
    t.not(r.code, 0);
    t.match(r.out, /authenticates by MUNGE.*MPMAKE_AUTH=munge/);
  });
});
