/**
 * Audit F4: on a `--user` agent every job's environment was in the
 * launcher's argv, which any local user of the node can read in
 * /proc/PID/cmdline. The environment now reaches the launcher through a
 * pipe (a private file for pty jobs). The job itself, running as the job
 * user (any local user can do the same), looks for its own DATABASE_URL in
 * every process's command line while its launcher is alive.
 */
import t from 'tap';
import { nativeLauncher } from '../../lib/agent/job-command.js';
import { startAgent, TestClient } from '../agent/client.js';
import { makeTestUser, usersSkip } from '../helpers/users.js';

const skip = usersSkip() || (nativeLauncher() ? false : 'needs build/mpmake-exec (make build)');

// awk takes the values from its environment: no process gets them in its
// argv. CONTROL's value is also in this job's own argv (public by design):
// it shows the scan finds what is there.
const SCAN =
  'cat /proc/[0-9]*/cmdline 2>/dev/null | awk \'BEGIN { RS = "\\0" } ' +
  'index($0, ENVIRON["DATABASE_URL"]) { n++ } index($0, ENVIRON["CONTROL"]) { c++ } ' +
  'END { print "seen=" n + 0; print "control=" (c > 0) }\'; ' +
  'echo "env=$DATABASE_URL"; id -un';

t.test('F4: a job environment is not in any command line on the node', { skip }, async (t) => {
  const user = await makeTestUser(t, 'mpf4');
  const agent = await startAgent(t, { slots: 2, extraArgs: ['--user', user.name] });
  const client = await TestClient.ready(t, agent.port);
  const url = `postgres://app:S3cret${process.pid}@db/prod`;
  const control = `control-${process.pid}`;
  const env = { PATH: '/usr/bin:/bin', DATABASE_URL: url, CONTROL: control };
  for (const tty of [undefined, { cols: 80, rows: 24 }]) {
    const what = tty ? 'pty job' : 'pipe job';
    const r = await client.result(
      client.submit({
        argv: ['/bin/sh', '-c', SCAN, 'sh', control],
        cwd: '/tmp',
        env,
        ...(tty ? { tty } : {}),
      }),
    );
    const out = r.stdout.toString().replace(/\r/g, '');
    t.equal(r.exit.code, 0, `${what}: ${r.stderr.toString()}`);
    t.match(out, `env=${url}\n`, `${what}: the job still gets its environment`);
    t.match(out, `${user.name}\n`, `${what}: as the job user`);
    t.match(out, /^control=1$/m, `${what}: the scan sees what is in argv`);
    t.match(out, /^seen=0$/m, `${what}: no command line holds the value`);
  }
});
