import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { findOuterBuild, typedCommand } from '../../lib/coordinator/make-command.js';

t.test('$(MAKE) is what the user typed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mpmake-typed-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(dir, 'mpmake');
  writeFileSync(script, '#!/usr/bin/env node\n');
  chmodSync(script, 0o755);
  const node = '/usr/bin/node';
  t.equal(typedCommand('/w/make', script, node, dir), '/w/make', 'a wrapper that names itself');
  t.equal(typedCommand('make', script, node, dir), 'make', 'a bare name given as argv[0]');
  t.equal(typedCommand('node', script, node, dir), 'mpmake', 'found on PATH: its bare name');
  t.equal(typedCommand(node, script, node, '/nowhere'), script, 'not on PATH: its path');
  chmodSync(script, 0o644);
  t.equal(typedCommand('node', script, node, dir), undefined, 'not executable: make decides');
});

t.test('a nested mpmake finds the outer build in its ancestors', async (t) => {
  const child = spawn('sleep', ['30'], {
    env: { PATH: process.env['PATH'], __MPMAKE_SOCK: '/run/x/shim.sock', __MPMAKE_SHIM: '/b/s' },
  });
  t.teardown(() => child.kill());
  await new Promise((r) => child.on('spawn', r));
  const link = findOuterBuild(child.pid!, () => true);
  t.same(link, { __MPMAKE_SOCK: '/run/x/shim.sock', __MPMAKE_SHIM: '/b/s' });
  t.equal(
    findOuterBuild(child.pid!, () => false),
    undefined,
    'not when its socket is gone',
  );
  t.equal(
    findOuterBuild(process.pid, () => true),
    undefined,
    'none above this test',
  );
});
