import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  intendedShell,
  makefileArgs,
  shellForTarget,
} from '../../lib/coordinator/intended-shell.js';

t.test('reads SHELL from the makefile and its literal includes', async (t) => {
  const dir = t.testdir({
    Makefile: 'A = 1\nSHELL := /bin/bash\nall:\n\tSHELL=/bin/zsh echo\n',
    'other.mk': 'include sub.mk\n',
    'sub.mk': 'override SHELL = /bin/dash # comment\n',
    'cond.mk': 'SHELL ?= /bin/ksh\n',
    'dyn.mk': 'SHELL := $(shell command -v bash)\n',
  });
  t.same(intendedShell(dir, []), { shell: '/bin/bash' });
  t.same(intendedShell(dir, ['other.mk']), { shell: '/bin/dash' });
  t.same(intendedShell(dir, ['cond.mk']), { shell: '/bin/ksh' });
  t.same(intendedShell(dir, ['Makefile', 'cond.mk']), { shell: '/bin/bash' });
  const dyn = intendedShell(dir, ['dyn.mk']);
  t.equal(dyn.shell, '/bin/sh');
  t.match(dyn.unresolved, /dyn\.mk: SHELL := \$\(shell/);
  writeFileSync(join(dir, 'GNUmakefile'), 'all:\n');
  t.same(intendedShell(dir, []), { shell: '/bin/sh' }, 'GNUmakefile is read first');
});

t.test('-C and -f in make arguments', async (t) => {
  t.same(makefileArgs(['-C', 'a', '-Cb', '-f', 'x.mk', '--file=y.mk', 'all'], '/r'), {
    cwd: '/r/a/b',
    makefiles: ['x.mk', 'y.mk'],
  });
  t.same(makefileArgs(['--directory=/abs', '-fz.mk'], '/r'), { cwd: '/abs', makefiles: ['z.mk'] });
});

t.test('target- and pattern-specific SHELL', async (t) => {
  const dir = t.testdir({
    Makefile:
      'SHELL := /bin/dash\nwith-bash other: SHELL := /bin/bash\n%.o: private SHELL = /bin/ksh\nall: a\n\tSHELL=/x true\n',
  });
  const found = intendedShell(dir, []);
  t.equal(shellForTarget(found, 'with-bash'), '/bin/bash');
  t.equal(shellForTarget(found, 'other'), '/bin/bash');
  t.equal(shellForTarget(found, 'x.o'), '/bin/ksh');
  t.equal(shellForTarget(found, 'all'), '/bin/dash');
  t.equal(shellForTarget(found, undefined), '/bin/dash');
});
