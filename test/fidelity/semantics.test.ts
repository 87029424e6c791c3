// Fidelity of make's semantics when every recipe line runs on an agent:
// exit statuses, signals, shells and their flags, $(shell), recursion,
// variables, file modes, and make's own options.
import t from 'tap';
import { startCluster } from '../helpers/cluster.js';
import { fidelityCase } from '../helpers/fidelity.js';
import { fidelityCaseDir as caseDir } from '../helpers/paths.js';

const cluster = await startCluster(t, 2, 2);
const c = () => cluster;

fidelityCase(t, c, 'exit-codes', caseDir('exit-codes'), [
  { args: [] },
  { args: ['-k'] },
  { args: ['-i'] },
]);

fidelityCase(t, c, 'signal', caseDir('signal'), [{ args: [] }, { args: ['-k'] }]);

fidelityCase(t, c, 'serial-order', caseDir('serial-order'), [{ label: 'no-j', args: [] }]);

fidelityCase(t, c, 'oneshell', caseDir('oneshell'), [{ args: [] }]);

fidelityCase(t, c, 'posix', caseDir('posix'), [{ args: [] }, { args: ['-k'] }]);

fidelityCase(t, c, 'bash-shell', caseDir('bash-shell'), [{ args: ['-k'] }]);

fidelityCase(t, c, 'target-shell', caseDir('target-shell'), [{ args: [] }]);

fidelityCase(t, c, 'continuation', caseDir('continuation'), [{ args: [] }]);

fidelityCase(t, c, 'shell-func', caseDir('shell-func'), [{ args: [] }]);

fidelityCase(t, c, 'recursive', caseDir('recursive'), [{ label: 'three-levels', args: [] }]);

fidelityCase(t, c, 'vars', caseDir('vars'), [
  {
    label: 'env-and-cmdline',
    args: ['CMDLINE=cli-value'],
    env: { FROM_ENV: 'env-value', FROM_ENV_UNEXPORTED: 'should-not-show' },
  },
]);

fidelityCase(t, c, 'dash-C', caseDir('dash-C'), [{ label: 'C-sub', args: ['-C', 'sub'] }]);

fidelityCase(t, c, 'umask', caseDir('umask'), [{ label: 'umask-027', args: [], umask: 0o027 }]);

fidelityCase(t, c, 'flags', caseDir('flags'), [
  { label: 'n', args: ['-n'], expectRemote: false },
  { label: 's', args: ['-s'] },
  { label: 'cmdline-vars', args: ['GREETING=bonjour', 'COUNT=3'] },
]);

fidelityCase(t, c, 'dollar-shell', caseDir('dollar-shell'), [{ args: [] }]);

fidelityCase(t, c, 'makeflags-env', caseDir('makeflags-env'), [
  { args: [] },
  { label: 'with-k-and-var', args: ['-k', 'V=1'] },
]);
