// mpmake's own command line: a wrong --mp-* option or host list is an
// error before any make runs; no cluster at all means plain make plus one
// warning line.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { fidelityCaseDir } from '../helpers/paths.js';
import { cleanEnv, runMake, runMpmake } from '../helpers/run.js';
import { resetTree, snapshotTree } from '../helpers/tree.js';

/** A makefile whose default goal leaves a file, to tell whether make ran. */
function probeDir(t: Test): string {
  const dir = t.testdir();
  writeFileSync(join(dir, 'Makefile'), 'all:\n\t@echo make ran; touch ran\n');
  return dir;
}

const usageErrors: { name: string; args: string[]; env?: Record<string, string>; names: RegExp }[] =
  [
    { name: 'unknown option', args: ['--mp-bogus'], names: /--mp-bogus/ },
    { name: 'unknown option with value', args: ['--mp-bogus=3', 'all'], names: /--mp-bogus/ },
    // Was handed to make, which has no option starting with --mp.
    {
      name: 'one of ours without its dash',
      args: ['--mp_hosts=127.0.0.1', 'all'],
      names: /unknown option --mp_hosts: .*start with --mp- \(--mp-hosts\?\)/,
    },
    {
      name: 'unparsable --mp-hosts',
      args: ['--mp-hosts=host:notaport/x'],
      names: /host:notaport\/x/,
    },
    { name: 'port out of range', args: ['--mp-hosts=127.0.0.1:99999/2'], names: /99999/ },
    {
      name: 'unparsable MPMAKE_HOSTS',
      args: [],
      env: { MPMAKE_HOSTS: 'host:notaport/x' },
      names: /MPMAKE_HOSTS.*host:notaport\/x/,
    },
    { name: 'empty fence command', args: [], env: { MPMAKE_FENCE: ' ' }, names: /MPMAKE_FENCE/ },
    {
      name: 'fence timeout without a fence command',
      args: ['--mp-fence-timeout=500'],
      names: /--mp-fence-timeout.*--mp-fence/,
    },
  ];

for (const { name, args, env, names } of usageErrors) {
  t.test(name, async (t) => {
    const dir = probeDir(t);
    const r = await runMpmake(args, { cwd: dir, env: cleanEnv(env) });
    t.equal(r.code, 2, 'exit status 2');
    const err = r.stderr.toString();
    t.match(err, /^mpmake: [^\n]+\n$/, 'exactly one stderr line, starting "mpmake: "');
    t.match(err, names, 'the line names the bad option or value');
    t.equal(r.stdout.toString(), '', 'nothing on stdout');
    t.notOk(existsSync(join(dir, 'ran')), 'make did not run');
  });
}

t.test("make's own long options pass through, --mp-* among them", async (t) => {
  const dir = probeDir(t);
  const r = await runMpmake(['--no-print-directory', '--mp-quiet', '--silent', '--', 'all'], {
    cwd: dir,
    env: cleanEnv(),
  });
  t.equal(r.code, 0, r.stderr.toString());
  t.equal(r.stdout.toString(), 'make ran\n', 'make ran with them');
});

t.test('no cluster configured: plain make plus one warning line', async (t) => {
  const work = join(t.testdir(), 'work');
  const source = fidelityCaseDir('exit-codes');
  const opts = { cwd: work, env: cleanEnv() };
  resetTree(source, work);
  const plain = await runMake(['-k'], opts);
  const plainTree = snapshotTree(work);
  resetTree(source, work);
  const mp = await runMpmake(['--mp-quiet', '-k'], opts);
  t.equal(mp.code, plain.code, 'same exit status');
  t.equal(mp.stdout.toString(), plain.stdout.toString(), 'same stdout');
  const lines = mp.stderr.toString().split('\n');
  const ours = lines.filter((l) => l.startsWith('mpmake: '));
  t.equal(ours.length, 1, `one warning line: ${JSON.stringify(ours)}`);
  t.equal(
    lines.filter((l) => !l.startsWith('mpmake: ')).join('\n'),
    plain.stderr.toString(),
    "otherwise make's stderr",
  );
  t.same(snapshotTree(work), plainTree, 'same files');
});

// An empty host list (an unset shell variable: `--mp-hosts=$HOSTS`) was met
// with "no cluster configured", as if none had been given: the warning
// names the empty value's source and what to do, as distcc does for an
// empty DISTCC_HOSTS; under --mp-no-fallback it is the error.
const emptyHosts: { name: string; args: string[]; env?: Record<string, string>; says: RegExp }[] = [
  { name: 'flag', args: ['--mp-hosts='], says: /--mp-hosts is empty \(an unset shell/ },
  {
    name: 'flag over MPMAKE_HOSTS',
    args: ['--mp-hosts', ' '],
    env: { MPMAKE_HOSTS: '127.0.0.1:9/1' },
    says: /--mp-hosts is empty .*leave --mp-hosts out to use MPMAKE_HOSTS/,
  },
  {
    name: 'environment',
    args: [],
    env: { MPMAKE_HOSTS: '' },
    says: /MPMAKE_HOSTS is empty .*set it to the agents/,
  },
  {
    name: 'config key',
    args: ['--mp-config=config.json'],
    says: /config key "hosts" in .*config\.json is empty.*list the agents there/,
  },
];

for (const { name, args, env, says } of emptyHosts) {
  t.test(`empty host list (${name}): plain make and a warning naming it`, async (t) => {
    const dir = probeDir(t);
    writeFileSync(join(dir, 'config.json'), '{"hosts": []}\n');
    const r = await runMpmake(args, { cwd: dir, env: cleanEnv(env) });
    t.equal(r.code, 0, 'make ran');
    t.ok(existsSync(join(dir, 'ran')), 'the build ran locally');
    const ours = r.stderr
      .toString()
      .split('\n')
      .filter((l) => l.startsWith('mpmake: '));
    t.equal(ours.length, 1, `one line of ours: ${JSON.stringify(ours)}`);
    t.match(ours[0], /^mpmake: warning: /);
    t.match(ours[0], says, 'names where the empty list came from and what to do');
    t.match(ours[0], /running plain make/);
  });
}

t.test('empty host list under --mp-no-fallback: an error naming it', async (t) => {
  const dir = probeDir(t);
  const r = await runMpmake(['--mp-hosts=', '--mp-no-fallback'], {
    cwd: dir,
    env: cleanEnv(),
  });
  t.equal(r.code, 2);
  t.match(
    r.stderr.toString(),
    /^mpmake: --mp-hosts is empty .*--mp-no-fallback is set: .*\[MPM_ERR_NO_AGENTS\]\n$/,
  );
  t.notOk(existsSync(join(dir, 'ran')), 'make did not run');
});
