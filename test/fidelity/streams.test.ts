// Fidelity of what make's users see on their terminal or CI log: ordering
// across stdout and stderr, -O grouping, volume, arbitrary bytes, long lines.
import t from 'tap';
import { startCluster } from '../helpers/cluster.js';
import { fidelityCase } from '../helpers/fidelity.js';
import { fidelityCaseDir as caseDir } from '../helpers/paths.js';

const cluster = await startCluster(t, 2, 2);
const c = () => cluster;

fidelityCase(t, c, 'interleaved', caseDir('interleaved'), [
  { label: 'separate-pipes', args: [] },
  { label: 'one-pipe', args: [], stdio: 'merged' },
]);

fidelityCase(t, c, 'output-sync', caseDir('output-sync'), [
  { label: 'O-j2-separate-pipes', args: ['-O', '-j2'], compare: 'output-sync' },
  { label: 'O-j2-one-pipe', args: ['-O', '-j2'], compare: 'output-sync', stdio: 'merged' },
]);

fidelityCase(t, c, 'big-output', caseDir('big-output'), [{ label: '50MiB-stdout', args: [] }]);

fidelityCase(t, c, 'binary-utf8', caseDir('binary-utf8'), [
  { label: 'separate-pipes', args: [] },
  { label: 'one-pipe', args: [], stdio: 'merged' },
]);

fidelityCase(t, c, 'latin1-argv', caseDir('latin1-argv'), [{ args: [] }]);

fidelityCase(t, c, 'long-line', caseDir('long-line'), [{ label: '100KiB-line', args: [] }]);
