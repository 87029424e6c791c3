// MUNGE on the cluster test bed (issue 15): two nodes, each agent as root
// with --auth munge and a munged of its own (own socket, the cluster's one
// key), TLS (the default off loopback); a test user builds from the client
// host with MPMAKE_AUTH=munge through the client's own munged. The build
// directory is the user's home (the same real file system on every host;
// the bed's sshfs mount is root's alone): the start check and every job
// run as the user, on the nodes, and every output belongs to the user.
// A case of the shared bed (run by bed.test.ts).
import { chownSync, copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { nativeLauncher } from '../../lib/agent/job-command.js';
import type { Bed } from '../helpers/cluster-bed.js';
import { mungeAgentArgs, mungeClientEnv, mungeSkip, startMunged } from '../helpers/munge.js';
import { mpmakeCli } from '../helpers/paths.js';
import { makeTestUser, runuserArgs, usersSkip } from '../helpers/users.js';

/** A user's build through MUNGE agents on every node (each with a munged of its own). */
export async function mungeCases(t: Test, bed: Bed): Promise<void> {
  const skip =
    usersSkip() ||
    mungeSkip() ||
    (nativeLauncher() ? false : 'needs build/mpmake-exec (make build)');
  t.test('a user builds through MUNGE agents, as that user', { skip }, async (t) => {
    const clientMunged = await startMunged(t);
    const nodeMunged = await Promise.all(
      bed.nodes.map(() => startMunged(t, { keyFile: clientMunged.keyFile })),
    );
    // Started anew (each munged is new); the next case's agents replace them.
    const agents = await bed.useAgents(nodeMunged.map((m) => ({ extraArgs: mungeAgentArgs(m) })));
    const user = await makeTestUser(t, 'mpmbed');
    const home = `/home/${user.name}`;
    const secret = join(home, 'mpmake-secret');
    copyFileSync(bed.secretFile, secret);
    const proj = join(home, 'proj');
    mkdirSync(proj);
    const targets = ['a', 'b', 'c', 'd', 'e', 'f'];
    writeFileSync(
      join(proj, 'Makefile'),
      `all: ${targets.join(' ')} kept\n` +
        `${targets.join(' ')}:\n\tid -un > $@; echo "$$MPMAKE_NODE" >> $@\n` +
        'kept:\n\ttouch $@\n',
    );
    for (const f of [secret, proj, join(proj, 'Makefile')]) chownSync(f, user.uid, user.gid);

    const env = {
      HOME: home,
      PATH: '/usr/bin:/bin',
      ...mungeClientEnv(clientMunged),
      MPMAKE_HOSTS: bed.hostsList(),
      MPMAKE_SECRET_FILE: secret,
    };
    const r = await bed.client.run(
      'runuser',
      runuserArgs(user.name, env, [
        process.execPath,
        mpmakeCli,
        '--mp-no-fallback',
        '--mp-no-learn',
        '-j6',
      ]),
      { cwd: proj, timeoutMs: 180_000 },
    );
    t.equal(r.code, 0, `the build: ${r.stderr.toString()}`);
    const ids = new Set(agents.map((a) => a.id));
    for (const f of targets) {
      const [name, node] = readFileSync(join(proj, f), 'utf8').split('\n');
      t.equal(name, user.name, `${f} was made as ${user.name}`);
      t.ok(ids.has(node!), `on a node (${node})`);
      t.equal(statSync(join(proj, f)).uid, user.uid, `${f} belongs to ${user.name}`);
    }
    t.equal(statSync(join(proj, 'kept')).uid, user.uid, 'and so does the line run on the client');
    for (const a of agents) {
      t.notMatch(a.log(), /refused|failed/, `no refusal on ${a.node.name}`);
      t.match(a.log(), `by MUNGE; its jobs run as ${user.name}`, `${a.node.name} knew the user`);
    }
  });
}
