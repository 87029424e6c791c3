// Nothing stale reaches make: before the shim hands make a remote job's
// success, it waits until its own stat() sees the job's targets as the node
// saw them (issue 11). Here the "node's view" is a file state that appears
// a little later, as a cache expiring would; and the agent's side, which
// waits for a job's inputs before the job starts.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { revalidateInputs, plainWait, seeFile } from '../../lib/agent/file-seen.js';
import { expectPayload, shimFrame, ShimFrame } from '../../lib/shim/shim-protocol.js';
import {
  FakeCoordinator,
  delay,
  ensureNativeShim,
  run,
  shimEnv,
  shimVariants,
  shortTempDir,
} from './shim-harness.js';

/** A file's later state, made aside: write `next` beside `file`, renamed over it by `apply`. */
function laterState(
  file: string,
  content: string,
): { apply: () => void; seen: ReturnType<typeof seeFile> } {
  const next = `${file}.next`;
  fs.writeFileSync(next, content);
  fs.utimesSync(next, 1_700_000_000, 1_700_000_000);
  return { apply: () => fs.renameSync(next, file), seen: seeFile(next) };
}

const dir = shortTempDir();
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const variants = shimVariants(dir).filter((v) => v.name !== 'fallback-launcher');

for (const v of variants) {
  t.test(v.name, async (t) => {
    const work = fs.mkdtempSync(path.join(dir, 'w-'));
    const sock = path.join(work, 's.sock');
    let onRequest: (c: import('./shim-harness.js').FakeConn) => void | Promise<void> = () => {};
    const fc = await FakeCoordinator.start(sock, (c) => onRequest(c));
    t.teardown(() => fc.close());
    const shim = (): ReturnType<typeof run> =>
      run(v.file, [...v.prefix, '-c', 'true'], { cwd: work, env: shimEnv(sock) });

    t.test('waits until the target looks as the node saw it', async (t) => {
      const target = path.join(work, 'a.o');
      fs.writeFileSync(target, 'old');
      const later = laterState(target, 'new object');
      const seen = { ...(await later.seen), path: target };
      onRequest = async (c) => {
        c.send(shimFrame(ShimFrame.Expect, expectPayload(5000, 'node-x', [seen])));
        c.exit(0);
        await delay(150);
        later.apply();
      };
      const r = await shim();
      t.equal(r.code, 0, `success once it is seen; stderr: ${r.stderr}`);
      t.equal(r.stderr.toString(), '', 'no warning');
      const conn = fc.conns[fc.conns.length - 1]!;
      await delay(50);
      t.equal(conn.fresh.length, 1, 'one FRESH report');
      t.same(conn.fresh[0]!.stale, [], 'nothing stale');
      t.ok(conn.fresh[0]!.retries > 0, 'it looked again while the file was old');
    });

    t.test('past the bound: 127 and one warning naming the file and the cause', async (t) => {
      const target = path.join(work, 'b.o');
      fs.writeFileSync(target, 'old');
      const seen = { path: target, size: 99, mtimeS: 1_600_000_000, mtimeNs: 0 };
      onRequest = (c) => {
        c.send(shimFrame(ShimFrame.Expect, expectPayload(100, 'node-y', [seen])));
        c.exit(0);
      };
      const r = await shim();
      t.equal(r.code, 127, 'the line fails');
      const lines = r.stderr.toString().trim().split('\n');
      t.equal(lines.length, 1, `one warning: ${r.stderr}`);
      t.match(lines[0], target);
      t.match(lines[0], /written on node-y/);
      // The one code format, at the end (was `(MPM_ERR_FS_STALE)` mid-sentence).
      t.match(
        lines[0],
        /failing this line\. Raise --mp-fs-wait, or mount with shorter caches \[MPM_ERR_FS_STALE\]$/,
      );
      t.match(lines[0], /lookupcache/);
      t.match(lines[0], /attr_timeout/);
      const conn = fc.conns[fc.conns.length - 1]!;
      await delay(50);
      t.same(conn.fresh[0]?.stale, [target], 'the report names it');
    });

    t.test('a target missing here past the bound: named as a cached "no such file"', async (t) => {
      const target = path.join(work, 'gone.o');
      const seen = { path: target, size: 3, mtimeS: 1_600_000_000, mtimeNs: 0 };
      onRequest = (c) => {
        c.send(shimFrame(ShimFrame.Expect, expectPayload(100, 'node-z', [seen])));
        c.exit(0);
      };
      const r = await shim();
      t.equal(r.code, 127, 'the line fails');
      const lines = r.stderr.toString().trim().split('\n');
      t.equal(lines.length, 1, `one warning: ${r.stderr}`);
      t.match(lines[0], `${target}, written on node-z, is still missing here`);
      t.match(lines[0], /lookupcache=positive/);
      t.match(lines[0], /negative_timeout=0/);
      // The one code format, at the end (was `(MPM_ERR_FS_STALE)` mid-sentence).
      t.match(
        lines[0],
        /failing this line\. Raise --mp-fs-wait, or mount with shorter caches \[MPM_ERR_FS_STALE\]$/,
      );
      t.notOk(fs.existsSync(target), 'looking it up afresh left nothing behind');
    });

    t.test('a target the node removed: waits until it is gone here', async (t) => {
      const target = path.join(work, 'c.o');
      fs.writeFileSync(target, 'still here');
      onRequest = async (c) => {
        c.send(
          shimFrame(ShimFrame.Expect, expectPayload(5000, 'n', [{ path: target, absent: true }])),
        );
        c.exit(0);
        await delay(100);
        fs.rmSync(target);
      };
      const r = await shim();
      t.equal(r.code, 0);
      t.notOk(fs.existsSync(target));
    });

    t.test('a failed job is not revalidated', async (t) => {
      const target = path.join(work, 'd.o');
      const seen = { path: target, size: 1, mtimeS: 1, mtimeNs: 0 };
      onRequest = (c) => {
        c.send(shimFrame(ShimFrame.Expect, expectPayload(5000, 'n', [seen])));
        c.exit(2);
      };
      const r = await shim();
      t.equal(r.code, 2, "the job's own status");
      await delay(50);
      t.same(fc.conns[fc.conns.length - 1]!.fresh, [], 'no wait, no report');
    });
  });
}

t.test("a node waits for a job's inputs (--mp-revalidate, and without it)", async (t) => {
  t.ok(ensureNativeShim(), 'the native shim is built');
  for (const [name, wait] of [
    ['native', revalidateInputs],
    ['plain', (f: Parameters<typeof plainWait>[0], ms: number) => plainWait(f, ms)],
  ] as const) {
    const file = path.join(dir, `input-${name}.h`);
    fs.writeFileSync(file, '#define OLD 1\n');
    const later = laterState(file, '#define NEW 2\n');
    const seen = { ...(await later.seen), path: file };
    setTimeout(later.apply, 150);
    const w = await wait([seen], 5000, 'elsewhere');
    t.same(w.stale, [], `${name}: seen as written`);
    t.ok(w.retries > 0, `${name}: looked again while it was old`);
    const never = await wait([{ ...seen, size: 12345 }], 100, 'elsewhere');
    t.same(never.stale, [file], `${name}: past the bound, named`);
  }
});
