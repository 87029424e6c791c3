/**
 * The shims (native, fallback via its launcher, fallback run directly)
 * against a fake coordinator: real processes, a real unix socket.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  FakeCoordinator,
  delay,
  run,
  shimEnv,
  shimVariants,
  shortTempDir,
  start,
  type Handler,
  type ShimVariant,
} from './shim-harness.js';

const base = shortTempDir();
t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));
const variants = shimVariants(base);
let serial = 0;

/** A fake coordinator on a fresh short socket path, closed at the test's end. */
async function fake(
  t: { teardown(fn: () => unknown): void },
  handler: Handler,
): Promise<FakeCoordinator> {
  const fc = await FakeCoordinator.start(path.join(base, `c${serial++}.sock`), handler);
  t.teardown(async () => {
    await fc.close();
    if (fc.errors.length > 0) throw fc.errors[0];
  });
  return fc;
}

function args(v: ShimVariant, ...rest: string[]): string[] {
  return [...v.prefix, ...rest];
}

const hasPerl = spawnSync('perl', ['-e', '1']).status === 0;

type Pty = typeof import('node-pty');
let pty: Pty | null = null;
try {
  pty = (await import('node-pty')) as Pty;
} catch {
  pty = null;
}

for (const v of variants) {
  t.test(v.name, async (t) => {
    t.test('without MPMAKE_SOCK it is /bin/sh', async (t) => {
      const env = shimEnv('');
      delete env.MPMAKE_SOCK;
      const r = await run(v.file, args(v, '-c', 'echo hi; exit 3'), { env });
      t.equal(r.stdout.toString(), 'hi\n');
      t.equal(r.code, 3);
    });

    t.test('non -c invocations are a plain shell', async (t) => {
      const fc = await fake(t, (c) => c.exit(99));
      const script = path.join(base, `script${serial++}.sh`);
      fs.writeFileSync(script, 'echo "script $1"\nexit 5\n');
      const r = await run(v.file, args(v, script, 'arg'), { env: shimEnv(fc.path) });
      t.equal(r.stdout.toString(), 'script arg\n');
      t.equal(r.code, 5);
      t.equal(fc.conns.length, 0, 'the coordinator was not asked');
    });

    t.test('a parent that is not make gets a plain shell', async (t) => {
      const fc = await fake(t, (c) => c.exit(99));
      const env = shimEnv(fc.path, { MPMAKE_MAKE_NAME: 'no-such-make' });
      const r = await run(v.file, args(v, '-c', 'echo plain; exit 6'), { env });
      t.equal(r.stdout.toString(), 'plain\n');
      t.equal(r.code, 6);
      t.equal(fc.conns.length, 0);
    });

    t.test('MPMAKE_REAL_SHELL that cannot run: message and 127', async (t) => {
      const env = shimEnv('', { MPMAKE_REAL_SHELL: '/nonexistent/shell' });
      delete env.MPMAKE_SOCK;
      const r = await run(v.file, args(v, '-c', 'true'), { env });
      t.equal(r.code, 127);
      t.match(r.stderr.toString(), /^mpmake: cannot run \/nonexistent\/shell: /);
    });

    t.test('REQUEST carries argv, cwd, umask, ppid and the environment', async (t) => {
      const fc = await fake(t, (c) => c.exit(0));
      const line = 'printf "%s\\n" caf\u00e9 \\\n  \u20ac\u{1F600} && echo \'$x\'';
      const cwd = fs.mkdtempSync(path.join(base, 'cwd-'));
      const env = shimEnv(fc.path, { MPMAKE_TEST_VAR: 'a b=c \u00fc', EMPTY_VAR: '' });
      // exec keeps the pid, so the test stays the shim's parent
      const r = await run(
        '/bin/sh',
        ['-c', 'umask 027; exec "$@"', 'sh', v.file, ...args(v, '-ec', line)],
        { env, cwd },
      );
      t.equal(r.code, 0, r.stderr.toString());
      t.equal(fc.conns.length, 1);
      const req = fc.requests[0]!;
      t.same(req.argv.slice(1), ['-ec', line], 'argv[1..] forwarded unchanged');
      t.ok(req.argv[0], 'argv[0] is the shim name');
      t.equal(req.cwd, fs.realpathSync(cwd));
      t.equal(req.umask, 0o027);
      t.equal(req.ppid, process.pid);
      t.equal(req.flags, 0, 'pipes are not terminals');
      t.same([req.cols, req.rows], [0, 0]);
      t.equal(req.env.MPMAKE_TEST_VAR, 'a b=c \u00fc');
      t.equal(req.env.EMPTY_VAR, '');
      t.equal(req.env.MPMAKE_SOCK, fc.path);
      t.equal(req.env.PATH, process.env.PATH);
    });

    t.test(
      'terminal facts: flags and window size',
      { skip: pty ? false : 'node-pty is not available' },
      async (t) => {
        const fc = await fake(t, (c) => {
          c.stdout('on a tty\n');
          c.exit(0);
        });
        const env = shimEnv(fc.path) as Record<string, string>;
        const p = pty!.spawn(v.file, args(v, '-c', 'ls --color=auto'), {
          cols: 91,
          rows: 37,
          env,
        });
        let out = '';
        p.onData((d) => (out += d));
        const exit = await new Promise<{ exitCode: number; signal?: number }>((resolve) =>
          p.onExit(resolve),
        );
        t.equal(exit.exitCode, 0, out);
        t.match(out, /on a tty/);
        const req = fc.requests[0]!;
        t.equal(req.flags, 7, 'stdout and stderr are terminals, and one file (the pty)');
        t.same([req.cols, req.rows], [91, 37]);
      },
    );

    t.test('output reaches the right fds, binary-safe and in order', async (t) => {
      const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const fc = await fake(t, (c) => {
        c.stdout(all);
        c.stderr(Buffer.from([0, 255, 10, 13]));
        c.stdout('\nline2\n');
        c.stderr('err2\n');
        c.exit(0);
      });
      const r = await run(v.file, args(v, '-c', 'cc -c x.c'), { env: shimEnv(fc.path) });
      t.equal(r.code, 0);
      t.same(r.stdout, Buffer.concat([all, Buffer.from('\nline2\n')]));
      t.same(r.stderr, Buffer.concat([Buffer.from([0, 255, 10, 13]), Buffer.from('err2\n')]));

      // one file for both (make -O with stdout and stderr the same): arrival order
      const file = path.join(base, `both${serial++}`);
      const fd = fs.openSync(file, 'w');
      const r2 = await run(v.file, args(v, '-c', 'cc -c x.c'), {
        env: shimEnv(fc.path),
        stdio: ['ignore', fd, fd],
      });
      fs.closeSync(fd);
      t.equal(r2.code, 0);
      t.same(
        fs.readFileSync(file),
        Buffer.concat([
          all,
          Buffer.from([0, 255, 10, 13]),
          Buffer.from('\nline2\n'),
          Buffer.from('err2\n'),
        ]),
      );
    });

    t.test('a 10 MB stream arrives whole', async (t) => {
      const big = crypto.randomBytes(10 * 1024 * 1024);
      const fc = await fake(t, (c) => {
        // mixed frame sizes, one of 4 MiB
        let off = 0;
        const sizes = [1, 65536, 4 * 1024 * 1024, 1000, 300000];
        for (let i = 0; off < big.length; i++) {
          const n = Math.min(sizes[i % sizes.length]!, big.length - off);
          c.stdout(big.subarray(off, off + n));
          off += n;
        }
        c.exit(0);
      });
      const r = await run(v.file, args(v, '-c', 'cat big'), { env: shimEnv(fc.path) });
      t.equal(r.code, 0);
      t.equal(r.stdout.length, big.length);
      t.ok(r.stdout.equals(big), 'same bytes');
    });

    t.test('exit codes and death by signal', async (t) => {
      for (const code of [0, 1, 255]) {
        const fc = await fake(t, (c) => c.exit(code));
        const r = await run(v.file, args(v, '-c', 'false'), { env: shimEnv(fc.path) });
        t.equal(r.code, code, `EXIT ${code}`);
        t.equal(r.signal, null);
      }
      const fc = await fake(t, (c) => {
        c.stdout('before\n');
        c.exit(-1, 15);
      });
      const r = await run(v.file, args(v, '-c', 'sleep 100'), { env: shimEnv(fc.path) });
      t.equal(r.signal, 'SIGTERM');
      t.equal(r.stdout.toString(), 'before\n');
    });

    t.test('LOCAL runs the line here with the given shell', async (t) => {
      const fc = await fake(t, (c) => c.local('/bin/sh'));
      const out = path.join(base, `local${serial++}`);
      const r = await run(v.file, args(v, '-c', `echo "ran $$" > ${out}; echo here; exit 7`), {
        env: shimEnv(fc.path),
      });
      t.equal(r.code, 7);
      t.equal(r.stdout.toString(), 'here\n');
      t.match(fs.readFileSync(out, 'utf8'), /^ran \d+\n$/);
      t.equal(fc.conns.length, 1);
    });

    t.test('SIGINT: CANCEL(2), relay until EXIT, die by SIGINT', async (t) => {
      const fc = await fake(t, async (c) => {
        c.stdout('started\n');
        const sig = await c.nextCancel();
        c.stderr(`cancelled by ${sig}\n`);
        await delay(50);
        c.exit(-1, sig);
      });
      const p = start(v.file, args(v, '-c', 'sleep 100'), { env: shimEnv(fc.path) });
      const conn = await fc.firstRequest();
      await delay(100);
      p.child.kill('SIGINT');
      const r = await p.done;
      t.same(conn.cancels, [2], 'one CANCEL with SIGINT');
      t.equal(r.signal, 'SIGINT');
      t.equal(r.stdout.toString(), 'started\n');
      t.equal(r.stderr.toString(), 'cancelled by 2\n', 'output after the cancel is relayed');
    });

    t.test('SIGTERM then a normal EXIT still dies by SIGTERM; one CANCEL only', async (t) => {
      const fc = await fake(t, async (c) => {
        await c.nextCancel();
        await delay(150);
        c.exit(0);
      });
      const p = start(v.file, args(v, '-c', 'sleep 100'), { env: shimEnv(fc.path) });
      const conn = await fc.firstRequest();
      await delay(100);
      p.child.kill('SIGTERM');
      await delay(50);
      p.child.kill('SIGHUP');
      const r = await p.done;
      t.same(conn.cancels, [15]);
      t.equal(r.signal, 'SIGTERM');
    });

    t.test('a closed reader: CANCEL(SIGPIPE), then death by SIGPIPE', async (t) => {
      const fc = await fake(t, async (c) => {
        c.stdout('first\n');
        const cancelled = c.nextCancel();
        let sig = 0;
        void cancelled.then((s) => (sig = s));
        for (let i = 0; i < 200 && sig === 0 && !c.closed; i++) {
          c.stdout(`more ${i}\n`);
          await delay(10);
        }
        c.exit(0);
      });
      const p = start(v.file, args(v, '-c', 'yes'), { env: shimEnv(fc.path) });
      p.child.stdout!.once('data', () => p.child.stdout!.destroy());
      const r = await p.done;
      const conn = fc.conns[0]!;
      t.same(conn.cancels, [13]);
      t.equal(r.signal, 'SIGPIPE');
    });

    t.test('the coordinator goes away mid-job: 127 and a message', async (t) => {
      const fc = await fake(t, (c) => {
        c.stdout('partial\n');
        setTimeout(() => c.socket.destroy(), 50);
      });
      const r = await run(v.file, args(v, '-c', 'make-believe'), { env: shimEnv(fc.path) });
      t.equal(r.code, 127);
      t.equal(r.stdout.toString(), 'partial\n');
      t.match(
        r.stderr.toString(),
        new RegExp(
          `^mpmake: lost the coordinator \\(MPMAKE_SOCK=${fc.path.replace(/[.]/g, '\\.')}\\): .+; is mpmake still running\\?\\n$`,
        ),
      );
      const gone = path.join(base, 'no-such.sock');
      const r2 = await run(v.file, args(v, '-c', 'x'), { env: shimEnv(gone) });
      t.equal(r2.code, 127);
      t.match(r2.stderr.toString(), /lost the coordinator .*connect: .*is mpmake still running\?/);
    });

    t.test('a socket path longer than sun_path still connects', async (t) => {
      let dir = base;
      while (dir.length < 130) dir = path.join(dir, 'a-long-directory-name');
      fs.mkdirSync(dir, { recursive: true });
      const cwd = process.cwd();
      // listen through a relative path: the server has the same limit
      process.chdir(dir);
      const name = `long${serial++}.sock`;
      let fc: FakeCoordinator;
      try {
        fc = await FakeCoordinator.start(name, (c) => {
          c.stdout('long ok\n');
          c.exit(0);
        });
      } finally {
        process.chdir(cwd);
      }
      t.teardown(() => fc.close());
      const r = await run(v.file, args(v, '-c', 'x'), {
        env: shimEnv(path.join(dir, name)),
      });
      t.equal(r.stdout.toString(), 'long ok\n', r.stderr.toString());
      t.equal(r.code, 0);
    });

    t.test(
      'stdout with O_NONBLOCK (EAGAIN) loses nothing',
      { skip: hasPerl ? false : 'perl is needed to set O_NONBLOCK' },
      async (t) => {
        const data = crypto.randomBytes(2 * 1024 * 1024);
        const fc = await fake(t, (c) => {
          for (let off = 0; off < data.length; off += 100000) {
            c.stdout(data.subarray(off, off + 100000));
          }
          c.exit(0);
        });
        const fifo = path.join(base, `fifo${serial++}`);
        spawnSync('mkfifo', [fifo]);
        const rfd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
        const wfd = fs.openSync(fifo, fs.constants.O_WRONLY);
        const reader = new net.Socket({ fd: rfd, readable: true, writable: false });
        const got: Buffer[] = [];
        let slow = true;
        reader.on('data', (b: Buffer) => {
          got.push(b);
          if (slow) {
            // read slowly at first so the pipe fills up
            reader.pause();
            setTimeout(() => reader.resume(), 5);
          }
        });
        const closed = new Promise((resolve) => reader.on('close', resolve));
        // libuv makes a child's stdio blocking; perl sets O_NONBLOCK back and
        // plays make: it runs the shim and holds only the write end (the test
        // holding the read end while being the parent would be a $(shell) call)
        const r = await run(
          'perl',
          [
            '-e',
            'use Fcntl; my $f = fcntl(STDOUT, F_GETFL, 0); fcntl(STDOUT, F_SETFL, $f | O_NONBLOCK) or die; system { $ARGV[0] } @ARGV; exit($? >> 8)',
            v.file,
            ...args(v, '-c', 'cat data'),
          ],
          {
            env: shimEnv(fc.path, { MPMAKE_MAKE_NAME: 'perl' }),
            stdio: ['ignore', wfd, 'pipe'],
          },
        );
        fs.closeSync(wfd);
        slow = false;
        await closed;
        t.equal(r.code, 0, r.stderr.toString());
        const all = Buffer.concat(got);
        t.equal(all.length, data.length);
        t.ok(all.equals(data), 'same bytes');
      },
    );
  });
}
