import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import {
  fallbackShimPath,
  installShim,
  launcherScript,
  nativeShimPath,
} from '../../lib/shim/install-shim.js';
import { PACKAGE_ROOT, ensureNativeShim, run, shortTempDir } from './shim-harness.js';

const base = shortTempDir();
t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));

function privateDir(name: string): string {
  const dir = path.join(base, name);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

function plainEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.MPMAKE_SOCK;
  return env;
}

t.test('paths of the shims', async (t) => {
  t.equal(nativeShimPath(), path.join(PACKAGE_ROOT, 'build', 'mpmake-shim'));
  t.equal(fallbackShimPath(), path.join(PACKAGE_ROOT, 'dist', 'lib', 'shim', 'fallback-shim.js'));
  t.ok(fs.existsSync(fallbackShimPath()), 'the fallback shim is compiled');
});

t.test(
  'native: a symlink named sh to build/mpmake-shim',
  { skip: !ensureNativeShim() },
  async (t) => {
    const dir = privateDir('native');
    fs.writeFileSync(path.join(dir, 'sh'), 'stale'); // replaced
    const r = installShim(dir);
    t.same(r, { shellPath: path.join(dir, 'sh'), native: true });
    t.equal(fs.readlinkSync(r.shellPath), nativeShimPath());
    const res = await run(r.shellPath, ['-c', 'echo hi; exit 3'], { env: plainEnv() });
    t.equal(res.stdout.toString(), 'hi\n');
    t.equal(res.code, 3);
  },
);

t.test('fallback: a launcher named sh when no native shim exists', async (t) => {
  const dir = privateDir('fallback');
  const r = installShim(dir, { nativeShim: path.join(base, 'missing') });
  t.same(r, { shellPath: path.join(dir, 'sh'), native: false });
  const st = fs.lstatSync(r.shellPath);
  t.ok(st.isFile());
  t.equal(st.mode & 0o111, 0o111, 'executable');
  const text = fs.readFileSync(r.shellPath, 'utf8');
  t.equal(text.split('\n')[0], `#!${process.execPath}`);
  t.equal(fs.existsSync(path.join(dir, 'package.json')), false, 'no package.json needed');
  const res = await run(r.shellPath, ['-c', 'echo "hi $0"; exit 3'], { env: plainEnv() });
  t.equal(res.stdout.toString(), 'hi /bin/sh\n');
  t.equal(res.code, 3);
  // installing again replaces it
  t.same(installShim(dir, { nativeShim: path.join(base, 'missing') }).native, false);
});

t.test('the launcher works under a "type": "module" package.json too', async (t) => {
  const dir = privateDir('esm-scope/run');
  fs.writeFileSync(path.join(base, 'esm-scope', 'package.json'), '{"type":"module"}\n');
  const r = installShim(dir, { nativeShim: path.join(base, 'missing') });
  const res = await run(r.shellPath, ['-c', 'echo esm-ok'], { env: plainEnv() });
  t.equal(res.stdout.toString(), 'esm-ok\n', res.stderr.toString());
  t.equal(res.code, 0);
});

t.test('a node path with a space gets a /bin/sh launcher', async (t) => {
  const nodeDir = privateDir('node dir');
  const nodeLink = path.join(nodeDir, 'node');
  fs.symlinkSync(process.execPath, nodeLink);
  const text = launcherScript(nodeLink, fallbackShimPath());
  t.match(text, /^#!\/bin\/sh\n/);
  const dir = privateDir('spacey');
  const sh = path.join(dir, 'sh');
  fs.writeFileSync(sh, text, { mode: 0o755 });
  fs.chmodSync(sh, 0o755);
  const res = await run(sh, ['-c', "echo 'quoted it'; exit 4"], { env: plainEnv() });
  t.equal(res.stdout.toString(), 'quoted it\n', res.stderr.toString());
  t.equal(res.code, 4);
});
