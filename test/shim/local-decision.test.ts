import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  commIsMake,
  containsWord,
  decide,
  fdinfoAccessMode,
  inheritedFds,
  isDashC,
  isLocalCommand,
  isRecursiveLine,
  makeflagsWords,
  parseJobserverAuth,
  parseUmask,
  procProbes,
  realShell,
  type ShimProbes,
} from '../../lib/shim/local-decision.js';

t.test('-c detection', async (t) => {
  t.ok(isDashC(['sh', '-c', 'echo hi']));
  t.ok(isDashC(['sh', '-ec', 'echo hi']));
  t.ok(isDashC(['sh', '-xc', 'echo hi']));
  t.ok(isDashC(['sh', '-e', '-c', 'echo hi']));
  t.ok(isDashC(['sh', '-o', 'pipefail', '-c', 'x']));
  t.notOk(isDashC(['sh', './config.status']), 'a script');
  t.notOk(isDashC(['sh', './config.status', '--recheck']));
  t.notOk(isDashC(['sh', '-c']), 'argc < 3');
  t.notOk(isDashC(['sh']));
  t.notOk(isDashC(['sh', '-e', 'script-c']), 'the c must be in a flag word');
  t.notOk(isDashC(['sh', 'x', '-c']), '-c as the last word is the line, not a flag');
  t.notOk(isDashC(['sh', '--norc', 'script']), 'long options do not count');
});

t.test('make recognised by /proc comm', async (t) => {
  t.ok(commIsMake('make'));
  t.ok(commIsMake('gmake'));
  t.ok(commIsMake('make-4.4'));
  t.notOk(commIsMake('bash'));
  t.notOk(commIsMake('node'));
  t.ok(commIsMake('remake', 'remake'));
  t.ok(commIsMake('a-very-long-mak', 'a-very-long-make-name'), 'comm is cut at 15 chars');
  t.notOk(commIsMake('cmake'));
});

t.test('MAKEFLAGS parsing', async (t) => {
  t.same(makeflagsWords(' -j2 --jobserver-auth=3,4'), ['-j2', '--jobserver-auth=3,4']);
  t.same(makeflagsWords('ks -j --jobserver-auth=3,4 -- A=1 B=x\\ y'), [
    'ks',
    '-j',
    '--jobserver-auth=3,4',
  ]);
  t.same(makeflagsWords('a\\ b c'), ['a b', 'c']);
  t.same(parseJobserverAuth(' -j2 --jobserver-auth=3,4'), { style: 'fds', read: 3, write: 4 });
  t.same(parseJobserverAuth(' -j2 --jobserver-fds=5,6'), { style: 'fds', read: 5, write: 6 });
  t.same(
    parseJobserverAuth(' -j4 --jobserver-auth=3,4 --jobserver-auth=fifo:/tmp/GMfifo1'),
    { style: 'fifo', path: '/tmp/GMfifo1' },
    'the last one wins',
  );
  t.same(parseJobserverAuth('--jobserver-auth=fifo:/tmp/x --jobserver-auth=7,8'), {
    style: 'fds',
    read: 7,
    write: 8,
  });
  t.same(parseJobserverAuth('-j --jobserver-auth=-2,-2'), { style: 'fds', read: -2, write: -2 });
  t.same(parseJobserverAuth('--jobserver-auth=gmake_semaphore_1'), {
    style: 'other',
    value: 'gmake_semaphore_1',
  });
  t.equal(parseJobserverAuth(' -j2'), null);
  t.equal(parseJobserverAuth(''), null);
  t.equal(parseJobserverAuth(undefined), null);
  t.equal(
    parseJobserverAuth(' -- V=--jobserver-auth=3,4'),
    null,
    'variables after -- are not options',
  );
});

t.test('make as a whole word', async (t) => {
  const yes = [
    'make',
    'make -C sub',
    '/usr/bin/make -C sub all',
    'cd sub && make',
    '(cd sub; make all)',
    'echo x|make -f -',
    '"make" -C x',
    "'make'",
    'FOO=1 make\tall',
    'x;make',
  ];
  const no = ['cmake ..', 'make.sh', 'makefile', 'remake -C x', 'automake', 'echo made', 'x-make'];
  for (const l of yes) t.ok(containsWord(l, 'make'), l);
  for (const l of no) t.notOk(containsWord(l, 'make'), l);
  t.ok(containsWord('gmake -C x', 'gmake'));
  t.notOk(containsWord('anything', ''));
});

t.test('the MPMAKE_LOCAL list', async (t) => {
  const list = 'mkdir rm touch ln echo printf true';
  t.ok(isLocalCommand('mkdir -p out', list));
  t.ok(isLocalCommand('  \trm -f a.o b.o', list));
  t.ok(isLocalCommand('echo done > stamp', list), 'redirections are allowed');
  t.ok(isLocalCommand('true', list));
  t.notOk(isLocalCommand('mkdir -p out; cc -c x.c', list), ';');
  t.notOk(isLocalCommand('echo x | tee y', list), '|');
  t.notOk(isLocalCommand('touch a && cc x.c', list), '&');
  t.notOk(isLocalCommand('echo `cc x.c`', list), 'backtick');
  t.notOk(isLocalCommand('echo $(shell-ish)', list), '$(');
  t.notOk(isLocalCommand('mkdir a\nmkdir b', list), 'newline');
  t.notOk(isLocalCommand('cc -c x.c', list));
  t.notOk(isLocalCommand('mkdirx -p', list));
  t.notOk(isLocalCommand('/bin/mkdir -p out', list), 'the word itself must be listed');
  t.notOk(isLocalCommand('mkdir -p out', ''), 'empty list');
  t.notOk(isLocalCommand('mkdir -p out', undefined));
  t.notOk(isLocalCommand('   ', list));
  t.ok(isLocalCommand('echo ${X}', list), '${ is not $(');
});

t.test('recursive line: fd test or textual test', async (t) => {
  const fifoAt3 = { inheritedFifo: (fd: number) => fd === 3 };
  const none = { inheritedFifo: () => false };
  const fdsEnv = { MAKEFLAGS: ' -j2 --jobserver-auth=3,4' };
  t.ok(isRecursiveLine('anything', fdsEnv, 1, fifoAt3), 'fd R reached us');
  t.notOk(isRecursiveLine('make -C sub', fdsEnv, 1, none), 'fd style trusts the fd only');
  t.ok(
    isRecursiveLine('make -C sub', { ...fdsEnv, MPMAKE_JOBSERVER_TEXTUAL: '1' }, 1, none),
    'textual mode',
  );
  t.notOk(
    isRecursiveLine('anything', { ...fdsEnv, MPMAKE_JOBSERVER_TEXTUAL: '1' }, 1, fifoAt3),
    'textual mode ignores the fd',
  );
  t.ok(isRecursiveLine('make -C sub', { MAKEFLAGS: ' -j --jobserver-auth=fifo:/x' }, 1, none));
  t.ok(isRecursiveLine('make -C sub', {}, 1, none), 'no jobserver');
  t.notOk(isRecursiveLine('cc -c x.c', {}, 1, fifoAt3));
  t.ok(isRecursiveLine('gmake all', { MPMAKE_MAKE_NAME: 'gmake' }, 1, none));
  t.notOk(isRecursiveLine('make all', { MPMAKE_MAKE_NAME: 'gmake' }, 1, none));
  t.ok(isRecursiveLine('make x', { MAKEFLAGS: '--jobserver-auth=-2,-2' }, 1, none));
});

t.test('decide() in order', async (t) => {
  const probes = (over: Partial<ShimProbes> = {}): ShimProbes => ({
    comm: () => 'make',
    stdoutIsShellFunctionPipe: () => false,
    inheritedFifo: () => false,
    ...over,
  });
  const env = { MPMAKE_SOCK: '/run/x.sock', MPMAKE_LOCAL: 'mkdir' };
  const c = ['/priv/sh', '-c', 'cc -c x.c'];
  t.same(decide(c, env, 7, probes()), { where: 'coordinator' });
  t.same(decide(c, {}, 7, probes()), { where: 'local', reason: 'no-coordinator' });
  t.same(decide(c, { MPMAKE_SOCK: '' }, 7, probes()), { where: 'local', reason: 'no-coordinator' });
  // Nothing marks a node but the missing socket: MPMAKE_REMOTE is no rule (issue 14).
  t.same(decide(c, { ...env, MPMAKE_REMOTE: '1' }, 7, probes()), { where: 'coordinator' });
  t.same(decide(['/priv/sh', './config.status'], env, 7, probes()), {
    where: 'local',
    reason: 'not-dash-c',
  });
  t.same(decide(c, env, 7, probes({ comm: () => 'bash' })), {
    where: 'local',
    reason: 'parent-not-make',
  });
  t.same(decide(c, env, 7, probes({ comm: () => null })), {
    where: 'local',
    reason: 'parent-not-make',
  });
  t.same(decide(c, env, 7, probes({ stdoutIsShellFunctionPipe: () => true })), {
    where: 'local',
    reason: 'shell-function',
  });
  t.same(
    decide(
      c,
      { ...env, MAKEFLAGS: ' -j2 --jobserver-auth=3,4' },
      7,
      probes({ inheritedFifo: (fd) => fd === 3 }),
    ),
    { where: 'local', reason: 'recursive-make' },
  );
  t.same(decide(['/priv/sh', '-c', 'mkdir -p out'], env, 7, probes()), {
    where: 'local',
    reason: 'local-list',
  });
  t.same(decide(['/priv/sh', '-ec', 'mkdir -p out && cc x.c'], env, 7, probes()), {
    where: 'coordinator',
  });
  let asked = '';
  decide(c, { ...env, MPMAKE_MAKE_NAME: 'remake' }, 7, {
    ...probes(),
    comm: (pid) => {
      asked = `${pid}`;
      return 'remake';
    },
  });
  t.equal(asked, '7', 'the parent pid is the one probed');
});

t.test('small parsers', async (t) => {
  t.equal(fdinfoAccessMode('pos:\t0\nflags:\t02000000\nmnt_id:\t15\n'), 0);
  t.equal(fdinfoAccessMode('pos:\t0\nflags:\t0100001\n'), 1);
  t.equal(fdinfoAccessMode('pos:\t0\nflags:\t02004002\n'), 2);
  t.equal(fdinfoAccessMode('nothing'), null);
  t.equal(parseUmask('Name:\tx\nUmask:\t0027\nState:\tR\n'), 0o027);
  t.equal(parseUmask('Name:\tx\n'), null);
  t.equal(realShell({}), '/bin/sh');
  t.equal(realShell({ MPMAKE_REAL_SHELL: '' }), '/bin/sh');
  t.equal(realShell({ MPMAKE_REAL_SHELL: '/bin/bash' }), '/bin/bash');
});

t.test('/proc probes on real processes', async (t) => {
  t.equal(procProbes.comm(process.pid), fs.readFileSync('/proc/self/comm', 'utf8').trim());
  t.equal(procProbes.comm(2 ** 30), null);
  // our fd 1 is not a $(shell) pipe of our parent
  t.equal(procProbes.stdoutIsShellFunctionPipe(process.ppid), false);

  // a child whose fd 1 is a pipe this process reads: the $(shell) shape.
  // The child's "parent" is us, so it asks about process.pid.
  const dir = t.testdir({});
  const script = path.join(dir, 'probe.mjs');
  const mod = new URL('../../lib/shim/local-decision.js', import.meta.url).href;
  fs.writeFileSync(
    script,
    `import { procProbes } from ${JSON.stringify(mod)};\n` +
      `process.stderr.write(String(procProbes.stdoutIsShellFunctionPipe(process.ppid)));\n`,
  );
  // stdio 'pipe' is a socketpair in Node: not a FIFO
  const viaSocket = spawnSync(process.execPath, [script], { encoding: 'utf8' });
  t.equal(viaSocket.stderr, 'false', 'a socketpair is not a $(shell) pipe');

  // a real FIFO read by this process
  const fifo = path.join(dir, 'fifo');
  t.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const rfd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const wfd = fs.openSync(fifo, fs.constants.O_WRONLY);
  const child = spawn(process.execPath, [script], { stdio: ['ignore', wfd, 'pipe'] });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b));
  await new Promise((resolve) => child.on('close', resolve));
  t.equal(err, 'true', 'the parent holds the read end');

  fs.closeSync(rfd);
  fs.closeSync(wfd);

  // the parent holding only the WRITE end (make | tee) is not a $(shell) call
  const fifo2 = path.join(dir, 'fifo2');
  t.equal(spawnSync('mkfifo', [fifo2]).status, 0);
  const r2 = fs.openSync(fifo2, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const w2 = fs.openSync(fifo2, fs.constants.O_WRONLY);
  fs.closeSync(r2);
  const res = spawnSync(process.execPath, [script], {
    stdio: ['ignore', w2, 'pipe'],
    encoding: 'utf8',
  });
  fs.closeSync(w2);
  t.equal(res.stderr, 'false', 'the parent holds only the write end');
});

t.test('inheritedFds / inheritedFifo see only what the parent passed', async (t) => {
  const dir = t.testdir({});
  const script = path.join(dir, 'fds.mjs');
  const mod = new URL('../../lib/shim/local-decision.js', import.meta.url).href;
  fs.writeFileSync(
    script,
    `import { inheritedFds, procProbes } from ${JSON.stringify(mod)};\n` +
      `const n = Number(process.argv[2]);\n` +
      `const fds = inheritedFds(process.ppid);\n` +
      `const others = [3, 4, 5, 6, 7, 8].filter((f) => f !== n && procProbes.inheritedFifo(f, process.ppid));\n` +
      `process.stdout.write(JSON.stringify({ fds, mine: procProbes.inheritedFifo(n, process.ppid), others }));\n`,
  );
  const fifo = path.join(dir, 'fifo');
  t.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  // the child gets our fd `fd` under the same number, as make passes its jobserver
  const stdio: Array<'ignore' | 'pipe' | 'inherit' | number> = ['ignore', 'pipe', 'inherit'];
  while (stdio.length < fd) stdio.push('ignore');
  stdio.push(fd);
  const r = spawnSync(process.execPath, [script, String(fd)], { stdio, encoding: 'utf8' });
  t.teardown(() => fs.closeSync(fd));
  const got = JSON.parse(r.stdout) as { fds: number[]; mine: boolean; others: number[] };
  t.equal(got.mine, true, 'the passed FIFO is recognised');
  t.ok(got.fds.includes(fd), 'the passed fd is inherited');
  // Node's own fds (epoll, its signal pipe) are not taken for make's: every
  // fd found is one this process holds too (tap may leak a few to children)
  for (const n of got.fds) t.ok(fs.fstatSync(n), `fd ${n} is open here too`);
  for (const n of got.others) t.ok(got.fds.includes(n), `FIFO at ${n} is an inherited one`);
  t.same(inheritedFds(2 ** 30), []);
});
