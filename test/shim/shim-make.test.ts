/**
 * The shims under real GNU make, with a fake coordinator: which lines reach
 * the coordinator and which stay local.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { installShim } from '../../lib/shim/install-shim.js';
import {
  FakeCoordinator,
  delay,
  ensureNativeShim,
  run,
  shimEnv,
  shortTempDir,
  type RunResult,
} from './shim-harness.js';

const makeVersion = spawnSync('make', ['--version'], { encoding: 'utf8' });
const skip = makeVersion.status === 0 ? false : 'GNU make is not installed';

const base = shortTempDir();
t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));

const shims: Array<{ name: string; shell: string }> = [];
{
  const native = ensureNativeShim();
  if (native) {
    const dir = path.join(base, 'native');
    fs.mkdirSync(dir, { mode: 0o700 });
    const r = installShim(dir, { nativeShim: native });
    shims.push({ name: 'native', shell: r.shellPath });
  }
  const dir = path.join(base, 'fallback');
  fs.mkdirSync(dir, { mode: 0o700 });
  const r = installShim(dir, { nativeShim: path.join(base, 'no-native-shim') });
  shims.push({ name: 'fallback', shell: r.shellPath });
}

let serial = 0;

/** A fake that answers every line with `fake ran: <line>` and EXIT 0. */
async function echoingFake(t: { teardown(fn: () => unknown): void }): Promise<FakeCoordinator> {
  const fc = await FakeCoordinator.start(path.join(base, `m${serial++}.sock`), (c) => {
    c.stdout(`fake ran: ${c.line}\n`);
    c.exit(0);
  });
  t.teardown(async () => {
    await fc.close();
    if (fc.errors.length > 0) throw fc.errors[0];
  });
  return fc;
}

function project(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(base, 'proj-'));
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

function makeEnv(sock: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = shimEnv(sock, extra);
  delete env.MPMAKE_MAKE_NAME; // the real make is the parent here
  return { ...env, ...extra };
}

function explain(r: RunResult): string {
  return `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

const SHELL_AND_LOCAL = `X := $(shell echo shellx)
.PHONY: all remote
all: remote out
out:
\tmkdir -p out
remote:
\t@echo remote $(X)
`;

const TOP = `.PHONY: all
all:
\t+$(MAKE) -C sub
\t+echo plus-line
\t@echo top-after
`;
const SUB = `.PHONY: all one two
all: one two
one:
\t@echo sub-one
two:
\t@echo sub-two
`;

for (const s of shims) {
  t.test(s.name, { skip }, async (t) => {
    t.test('$(shell) and MPMAKE_LOCAL lines stay local; others reach the fake', async (t) => {
      const fc = await echoingFake(t);
      const dir = project({ Makefile: SHELL_AND_LOCAL });
      // MPMAKE_TARGET=$@ as mpmake passes it when make cannot be interposed.
      const r = await run('make', [`SHELL=${s.shell}`, 'MPMAKE_TARGET=$@'], {
        cwd: dir,
        env: makeEnv(fc.path, { MPMAKE_LOCAL: 'mkdir rm touch' }),
      });
      t.equal(r.code, 0, explain(r));
      t.same(fc.lines, ['echo remote shellx'], 'only the ordinary line was sent');
      await delay(50);
      t.same(
        fc.wrote,
        [{ cwd: fs.realpathSync(dir), paths: ['out'] }],
        'the local line named its target first (WROTE), nothing else',
      );
      t.match(r.stdout.toString(), /fake ran: echo remote shellx\n/);
      t.ok(fs.statSync(path.join(dir, 'out')).isDirectory(), 'mkdir -p out ran here');
      const req = fc.requests[0]!;
      t.same(req.argv.slice(1), ['-c', 'echo remote shellx']);
      t.equal(req.cwd, fs.realpathSync(dir));
    });

    t.test('with stdout piped (make | cat), ordinary lines still reach the fake', async (t) => {
      const fc = await echoingFake(t);
      const dir = project({ Makefile: SHELL_AND_LOCAL });
      const r = await run('/bin/sh', ['-c', 'make "SHELL=$0" | cat', s.shell], {
        cwd: dir,
        env: makeEnv(fc.path, { MPMAKE_LOCAL: 'mkdir' }),
      });
      t.equal(r.code, 0, explain(r));
      t.same(fc.lines, ['echo remote shellx']);
      t.match(r.stdout.toString(), /fake ran: echo remote shellx\n/);
    });

    t.test(
      'a recursive line with a jobserver pool runs here; the sub-make recipes do not',
      async (t) => {
        const fc = await echoingFake(t);
        const dir = project({ Makefile: TOP, 'sub/Makefile': SUB });
        const fifo = path.join(dir, 'pool');
        t.equal(spawnSync('mkfifo', [fifo]).status, 0);
        const fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
        t.teardown(() => fs.closeSync(fd));
        fs.writeSync(fd, '+'); // -j2: one token, each make holds one implicit slot
        const r = await run('make', [`SHELL=${s.shell}`], {
          cwd: dir,
          env: makeEnv(fc.path, { MAKEFLAGS: ' -j2 --jobserver-auth=3,3' }),
          stdio: ['ignore', 'pipe', 'pipe', fd],
        });
        t.equal(r.code, 0, explain(r));
        t.same(
          [...fc.lines].sort(),
          ['echo sub-one', 'echo sub-two', 'echo top-after'],
          'sub-make recipes were sent, the $(MAKE) and + lines were not',
        );
        t.match(r.stdout.toString(), /fake ran: echo sub-one\n/);
        t.match(r.stdout.toString(), /^plus-line$/m, 'the + line ran here');
        t.notMatch(r.stderr.toString(), /jobserver/, 'the sub-make joined the pool');
        for (const req of fc.requests) {
          t.match(req.env.MAKEFLAGS, /--jobserver-auth=3,3/);
        }
        const back = Buffer.alloc(8);
        let n = 0;
        try {
          n = fs.readSync(fd, back);
        } catch {
          n = 0;
        }
        t.equal(n, 1, 'the token came back to the pool');
      },
    );

    t.test('textual mode: `make` as a word is recursive, + alone is not', async (t) => {
      const fc = await echoingFake(t);
      const dir = project({ Makefile: TOP, 'sub/Makefile': SUB });
      const fifo = path.join(dir, 'pool');
      t.equal(spawnSync('mkfifo', [fifo]).status, 0);
      const fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      t.teardown(() => fs.closeSync(fd));
      fs.writeSync(fd, '+');
      const r = await run('make', [`SHELL=${s.shell}`], {
        cwd: dir,
        env: makeEnv(fc.path, {
          MAKEFLAGS: ' -j2 --jobserver-auth=3,3',
          MPMAKE_JOBSERVER_TEXTUAL: '1',
        }),
        stdio: ['ignore', 'pipe', 'pipe', fd],
      });
      t.equal(r.code, 0, explain(r));
      t.same([...fc.lines].sort(), [
        'echo plus-line',
        'echo sub-one',
        'echo sub-two',
        'echo top-after',
      ]);
    });

    t.test('no jobserver at all: the textual test finds $(MAKE)', async (t) => {
      const fc = await echoingFake(t);
      const dir = project({ Makefile: TOP, 'sub/Makefile': SUB });
      const r = await run('make', [`SHELL=${s.shell}`], {
        cwd: dir,
        env: makeEnv(fc.path),
      });
      t.equal(r.code, 0, explain(r));
      t.same(fc.lines, ['echo sub-one', 'echo sub-two', 'echo plus-line', 'echo top-after']);
    });

    t.test('make -O: output of each target stays together, in arrival order', async (t) => {
      const fc = await FakeCoordinator.start(path.join(base, `m${serial++}.sock`), async (c) => {
        const name = c.line.replace(/^echo /, '');
        c.stdout(`${name} out1\n`);
        await new Promise((r) => setTimeout(r, 30));
        c.stderr(`${name} err\n`);
        await new Promise((r) => setTimeout(r, 30));
        c.stdout(`${name} out2\n`);
        c.exit(0);
      });
      t.teardown(() => fc.close());
      const dir = project({
        Makefile: `all: a b\na:\n\t@echo a\nb:\n\t@echo b\n.PHONY: all a b\n`,
      });
      const log = path.join(dir, 'log');
      const fd = fs.openSync(log, 'w');
      const r = await run('make', [`SHELL=${s.shell}`, '-j2', '-Otarget'], {
        cwd: dir,
        env: makeEnv(fc.path),
        stdio: ['ignore', fd, fd],
      });
      fs.closeSync(fd);
      t.equal(r.code, 0);
      const text = fs.readFileSync(log, 'utf8');
      const groups = text.match(/(a|b) out1\n\1 err\n\1 out2\n/g) ?? [];
      t.equal(groups.length, 2, text);
    });

    t.test('a failing remote line fails make; a killed one deletes the target', async (t) => {
      const dir = project({
        Makefile: `t1:\n\ttouch $@; fail\nt2:\n\ttouch $@; die\n`,
      });
      // the fake plays the node: it touches the target, then fails or is killed
      const fc = await FakeCoordinator.start(path.join(base, `m${serial++}.sock`), (c) => {
        const target = c.line.includes('fail') ? 't1' : 't2';
        fs.writeFileSync(path.join(c.request.cwd, target), 'partial');
        if (target === 't1') c.exit(3);
        else c.exit(-1, 15);
      });
      t.teardown(() => fc.close());
      for (const f of ['t1', 't2']) {
        fs.writeFileSync(path.join(dir, f), '');
        fs.utimesSync(path.join(dir, f), 1000, 1000);
      }
      const env = makeEnv(fc.path);
      let r = await run('make', [`SHELL=${s.shell}`, '-B', 't1'], { cwd: dir, env });
      t.equal(r.code, 2);
      t.match(r.stderr.toString(), /Error 3/);
      t.ok(fs.existsSync(path.join(dir, 't1')), 'kept after a non-zero exit');
      r = await run('make', [`SHELL=${s.shell}`, '-B', 't2'], { cwd: dir, env });
      t.equal(r.code, 2);
      t.match(r.stderr.toString(), /Deleting file 't2'|Terminated/);
      t.notOk(fs.existsSync(path.join(dir, 't2')), 'deleted after death by a signal');
    });
  });
}
