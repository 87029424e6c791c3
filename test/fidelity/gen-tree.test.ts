// The fixture generator: deterministic, the committed trees are what it
// makes, and every kind builds with plain make.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import t from 'tap';
import {
  generateFiles,
  generateTree,
  isTreeKind,
  parseArgs,
  type TreeKind,
  type TreeOptions,
} from '../../fixtures/gen-tree.js';
import { fixtureTree, repoRoot } from '../helpers/paths.js';
import { cleanEnv, runCapture, runMake } from '../helpers/run.js';

function listFiles(root: string, dir = root): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    return statSync(full).isDirectory() ? listFiles(root, full) : [relative(root, full)];
  });
}

t.test('same parameters give the same bytes', async (t) => {
  const a = generateFiles('mixed', { units: 5, work: 3, seed: 7 });
  const b = generateFiles('mixed', { units: 5, work: 3, seed: 7 });
  t.same([...a], [...b]);
  const c = generateFiles('mixed', { units: 5, work: 3, seed: 8 });
  t.not(c.get('expected.txt'), a.get('expected.txt'), 'the seed changes the constants');
});

for (const name of ['ctree-small', 'mixed-small']) {
  t.test(`committed tree ${name} is the generator's output`, async (t) => {
    const dir = fixtureTree(name);
    const recorded = JSON.parse(readFileSync(join(dir, 'gen-tree.json'), 'utf8')) as {
      kind: string;
    } & Partial<TreeOptions>;
    const { kind, ...options } = recorded;
    t.ok(isTreeKind(kind), `known kind ${kind}`);
    const files = generateFiles(kind as TreeKind, options);
    t.same(listFiles(dir).sort(), [...files.keys()].sort(), 'the same file list');
    for (const [path, contents] of files) {
      t.equal(readFileSync(join(dir, path), 'utf8'), contents, path);
    }
  });
}

const kinds: [TreeKind, Partial<TreeOptions>, RegExp][] = [
  ['ctree', { units: 3, work: 2 }, /^ctree: 3 units, checksum [0-9a-f]{16}$/m],
  ['ctree-recursive', { units: 4, work: 2, dirs: 2 }, /^ctree: 4 units, checksum [0-9a-f]{16}$/m],
  ['trivial', { units: 5 }, /^$/],
  ['sleep', { units: 2, sleepSeconds: 0 }, /touch s0001/],
  ['chain', { depth: 4 }, /^chain: \d+$/m],
  ['fanin', { units: 4 }, /^fanin: 4 objects, result \d+$/m],
  ['mixed', { units: 3, work: 1 }, /^mixed: test passed$/m],
];

for (const [kind, options, expected] of kinds) {
  t.test(`${kind} builds with plain make`, async (t) => {
    const dir = t.testdir();
    const files = generateTree(kind, dir, options);
    t.ok(files.has('Makefile'), 'has a Makefile');
    const r = await runMake(['-j2'], { cwd: dir });
    t.equal(r.code, 0, `make exits 0; stderr: ${r.stderr.toString()}`);
    t.match(r.stdout.toString(), expected, 'expected output');
    const again = await runMake(['-q', 'all'], { cwd: dir });
    if (kind === 'trivial' || kind === 'sleep') {
      t.equal(again.code, 0, 'up to date afterwards');
    }
  });
}

t.test('command line', async (t) => {
  t.same(parseArgs(['ctree', 'out', '--units', '3', '--work=5']), {
    kind: 'ctree',
    outDir: 'out',
    overrides: { units: 3, work: 5 },
  });
  t.throws(() => parseArgs(['nope', 'out']), /unknown kind 'nope'/);
  t.throws(() => parseArgs(['chain', 'out', '--units', '3']), /chain does not use --units/);
  t.throws(() => parseArgs(['ctree', 'out', '--work']), /--work needs a number/);
  const dir = t.testdir();
  const cli = join(repoRoot, 'dist', 'fixtures', 'gen-tree.js');
  const ok = await runCapture(process.execPath, [cli, 'chain', join(dir, 'c'), '--depth', '2'], {
    cwd: dir,
    env: cleanEnv(),
  });
  t.equal(ok.code, 0, 'CLI writes a tree');
  t.ok(statSync(join(dir, 'c', 'Makefile')).isFile());
  const bad = await runCapture(process.execPath, [cli, 'bogus', dir], {
    cwd: dir,
    env: cleanEnv(),
  });
  t.equal(bad.code, 2, 'CLI exits 2 on a bad kind');
  t.match(bad.stderr.toString(), /unknown kind 'bogus'/);
  t.ok(execFileSync('make', ['-v']).toString().startsWith('GNU Make'), 'GNU make on PATH');
});
