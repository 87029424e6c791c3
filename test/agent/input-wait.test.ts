// A job's inputs that another machine wrote in this build: its node waits
// until it sees them as their writer did before the job runs. For plain
// jobs the wait is done by the job's own process (forked by the spawner,
// before it execs the job), not by a process started for it: these check
// what that must keep: the job runs only on fresh inputs, a stale one
// refuses it with MPM_ERR_FS_STALE, the wait reaches the exit message, a
// cancel during the wait ends the job unrun, and one job's wait holds up
// no other job's start.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { seeFile } from '../../lib/agent/file-seen.js';
import { nativeLauncher } from '../../lib/agent/job-command.js';
import { RemoteJob } from '../../lib/agent/remote-job.js';
import type { RunAs } from '../../lib/agent/run-as.js';
import { closeSharedSpawner, sharedSpawner } from '../../lib/agent/spawn-client.js';
import type { ExitMessage, FileSeen, JobMessage } from '../../lib/protocol/messages.js';
import { eventually } from '../helpers/procs.js';
import { makeTestUser, usersSkip } from '../helpers/users.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mpm-input-wait-'));
t.teardown(() => {
  closeSharedSpawner();
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Ran {
  job: RemoteJob;
  exit: Promise<ExitMessage | undefined>;
  stderr: () => string;
}

let nextId = 1;

/** Starts a job that writes `marker` (so it shows whether it ran), through RemoteJob. */
function start(
  marker: string,
  inputs: FileSeen[],
  extra: Partial<JobMessage> = {},
  runAs?: RunAs,
): Ran {
  const message: JobMessage = {
    type: 'job',
    id: nextId++,
    argv: ['/bin/sh', '-c', `echo ran > ${marker}`],
    cwd: dir,
    env: { PATH: '/usr/bin:/bin' },
    umask: 0o022,
    inputs,
    fsWaitMs: 10_000,
    ...extra,
  };
  const err: Buffer[] = [];
  let exit: ExitMessage | undefined;
  let done!: (e: ExitMessage | undefined) => void;
  const finished = new Promise<ExitMessage | undefined>((r) => (done = r));
  const job = new RemoteJob(
    message,
    {
      send: (m) => {
        if (m.type === 'exit') exit = m;
        else if (m.type === 'data' && m.stream === 2) err.push(Buffer.from(m.bytes));
      },
    },
    () => {},
    () => done(exit),
    runAs,
  );
  job.start();
  return { job, exit: finished, stderr: () => Buffer.concat(err).toString() };
}

/** What `file` looks like now, and a state it never has (a wait for it never ends). */
async function states(name: string): Promise<{ now: FileSeen; never: FileSeen }> {
  const file = path.join(dir, name);
  fs.writeFileSync(file, 'int x;\n');
  const now = await seeFile(file);
  return { now, never: { ...now, size: 12345 } };
}

t.test('the job runs once its inputs look as written; the wait reaches the exit', async (t) => {
  t.ok(sharedSpawner(), 'build/mpmake-spawnd is built (the path checked here)');
  const file = path.join(dir, 'later.h');
  fs.writeFileSync(file, 'old\n');
  fs.writeFileSync(`${file}.next`, '#define NEW 2\n');
  fs.utimesSync(`${file}.next`, 1_700_000_000, 1_700_000_000);
  const later = { ...(await seeFile(`${file}.next`)), path: file };
  setTimeout(() => fs.renameSync(`${file}.next`, file), 150);
  const marker = path.join(dir, 'ran-1');
  const r = start(marker, [later]);
  const exit = await r.exit;
  t.match(exit, { code: 0, signal: null }, r.stderr());
  t.same(exit?.inputWait?.stale, [], 'nothing stale');
  t.ok((exit?.inputWait?.retries ?? 0) > 0, 'it looked again while the file was old');
  t.ok((exit?.inputWait?.lagMs ?? 0) > 0, 'the lag is reported');
  t.ok(fs.existsSync(marker), 'the job ran');
});

t.test(
  'an input still stale past the bound: the job does not run [MPM_ERR_FS_STALE]',
  async (t) => {
    const { never } = await states('stale.h');
    const marker = path.join(dir, 'ran-2');
    const r = start(marker, [never], { fsWaitMs: 100 });
    const exit = await r.exit;
    t.match(exit, { code: 127, signal: null });
    t.same(exit?.inputWait?.stale, [never.path], 'the report names it');
    t.match(r.stderr(), `mpmake: ${never.path} still looks different on this node after`);
    t.match(r.stderr(), /\(--mp-fs-wait=100\).*\[MPM_ERR_FS_STALE\]\n$/);
    t.notOk(fs.existsSync(marker), 'the job did not run');
  },
);

t.test('the same refusal where the job does not go through the spawner (tty)', async (t) => {
  const { never } = await states('stale-tty.h');
  const marker = path.join(dir, 'ran-3');
  const r = start(marker, [never], { fsWaitMs: 100, tty: { cols: 80, rows: 24 } });
  const exit = await r.exit;
  t.match(exit, { code: 127, signal: null });
  t.same(exit?.inputWait?.stale, [never.path]);
  t.match(r.stderr(), /still looks different on this node after .*\[MPM_ERR_FS_STALE\]\n$/);
  t.notOk(fs.existsSync(marker), 'the job did not run');
});

t.test('cancel during the wait ends the job unrun (the wait is in its process)', async (t) => {
  const { never } = await states('cancel.h');
  const marker = path.join(dir, 'ran-4');
  const r = start(marker, [never]);
  t.ok(await eventually(() => r.job.pid !== undefined, 10_000), 'the job process is there');
  r.job.signal('SIGTERM');
  const exit = await r.exit;
  t.match(exit, { code: null, signal: 'SIGTERM' });
  t.notOk(fs.existsSync(marker), 'the job did not run');

  // The client gone (abort) during the wait: nothing is sent, nothing runs.
  const gone = start(path.join(dir, 'ran-5'), [never]);
  t.ok(await eventually(() => gone.job.pid !== undefined, 10_000), 'its process is there');
  gone.job.abort();
  t.equal(await gone.exit, undefined, 'no exit message for a client that is gone');
  t.notOk(fs.existsSync(path.join(dir, 'ran-5')), 'the job did not run');
});

t.test("one job's wait holds up no other job's start", async (t) => {
  const { now, never } = await states('slow.h');
  const waiting = start(path.join(dir, 'ran-6'), [never]);
  let waitingOver = false;
  void waiting.exit.then(() => (waitingOver = true));
  const other = start(path.join(dir, 'ran-7'), [now]);
  t.match(await other.exit, { code: 0 }, 'the other job ran to its end');
  t.notOk(waitingOver, 'while the first one still waited');
  waiting.job.signal('SIGTERM');
  t.match(await waiting.exit, { signal: 'SIGTERM' });
});

const userSkip = usersSkip() || (nativeLauncher() ? false : 'needs build/mpmake-exec (make build)');

t.test(
  'a job run as another user: its inputs are looked at as that user',
  { skip: userSkip },
  async (t) => {
    const user = await makeTestUser(t, 'mpiw');
    fs.chmodSync(dir, 0o755);
    const ws = path.join(dir, 'ws');
    fs.mkdirSync(ws);
    fs.chownSync(ws, user.uid, user.gid);
    const rootOnly = path.join(dir, 'rootonly');
    fs.mkdirSync(rootOnly, { mode: 0o700 });
    fs.writeFileSync(path.join(rootOnly, 'in.h'), 'int y;\n');
    fs.writeFileSync(path.join(dir, 'open.h'), 'int z;\n');
    const hidden = await seeFile(path.join(rootOnly, 'in.h'));
    const visible = await seeFile(path.join(dir, 'open.h'));

    const ok = start(path.join(ws, 'ran-8'), [visible], { cwd: ws }, user);
    const okExit = await ok.exit;
    t.match(okExit, { code: 0 }, ok.stderr());
    t.same(okExit?.inputWait?.stale, [], 'what the user sees: seen as written');
    t.ok(fs.existsSync(path.join(ws, 'ran-8')), 'the job ran');

    // Root sees this one as written; the job's user cannot see it at all
    // (was: looked at as the agent's user, root, and the job ran).
    const no = start(path.join(ws, 'ran-9'), [hidden], { cwd: ws, fsWaitMs: 100 }, user);
    const noExit = await no.exit;
    t.match(noExit, { code: 127 });
    t.same(noExit?.inputWait?.stale, [hidden.path]);
    t.match(no.stderr(), /\[MPM_ERR_FS_STALE\]\n$/);
    t.notOk(fs.existsSync(path.join(ws, 'ran-9')), 'the job did not run');
  },
);
