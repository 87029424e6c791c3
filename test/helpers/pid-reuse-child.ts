/**
 * Run as pid 1 of a pid namespace of its own (`unshare -pf --mount-proc`,
 * see test/agent/pid-reuse.test.ts), where the next pid can be chosen
 * (/proc/sys/kernel/ns_last_pid) with nothing else forking. Prints one
 * line of JSON: what became of an unrelated process group that got the id
 * of a job that had ended, once the agent's late kill of that job was sent;
 * and of a job's straggler that ignored its cancel signal.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { SpawnClient } from '../../lib/agent/spawn-client.js';
import { SpawnedJobProcess } from '../../lib/agent/spawned-job-process.js';

const base = { cwd: '/', env: { PATH: '/usr/bin:/bin' }, umask: 0o022, mergeOutput: true };

function run(spawner: SpawnClient, argv: string[], onStart?: (job: SpawnedJobProcess) => void) {
  const job = new SpawnedJobProcess(spawner, { ...base, argv });
  const out: Buffer[] = [];
  job.on('data', (_s, b) => {
    out.push(b);
    onStart?.(job);
    onStart = undefined;
  });
  return new Promise<{ job: SpawnedJobProcess; out: string }>((resolve) =>
    job.once('finish', () => resolve({ job, out: Buffer.concat(out).toString() })),
  );
}

/**
 * Whether `pid` is dead or dying: gone, a zombie, or with a SIGKILL pending
 * (a kill(2) has been made when this is false, whenever it was made).
 */
function killed(pid: number): boolean {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return true;
  }
  const field = (name: string): string =>
    new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1] ?? '';
  const sigkill = (mask: string): boolean => (BigInt(`0x${mask || '0'}`) & (1n << 8n)) !== 0n;
  return /^[ZX]/.test(field('State')) || sigkill(field('SigPnd')) || sigkill(field('ShdPnd'));
}

const spawner = SpawnClient.start();
if (!spawner) throw new Error('build/mpmake-spawnd is not built');

// A job that has ended (its leader reaped by the spawner) ...
const ended = (await run(spawner, ['/bin/true'])).job;
const pid = ended.pid!;
// ... and an unrelated process group that gets its id.
let victim: ChildProcess | undefined;
for (let i = 0; i < 5 && victim?.pid !== pid; i++) {
  victim?.kill('SIGKILL');
  writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
  victim = spawn('/bin/sleep', ['300'], { detached: true, stdio: 'ignore' });
}
const reused = victim?.pid === pid;
// The agent's late kill of the ended job (RemoteJob's KILL_GRACE_MS timer).
ended.kill('SIGKILL');
// The spawner reads its frames in order: once this job is over, the kill has been dealt with.
await run(spawner, ['/bin/true']);
const victimKilled = killed(pid);

// A job whose leader ends on SIGTERM and leaves a straggler that ignores it.
const cancelled = await run(
  spawner,
  // The straggler says its pid once it ignores SIGTERM; the cancel comes then.
  ['/bin/sh', '-c', '(trap "" TERM; exec sh -c \'echo $$; exec sleep 300\') & wait'],
  (job) => job.kill('SIGTERM'),
);
const straggler = Number(cancelled.out.trim());
const stragglerKilled = straggler > 0 && killed(straggler);

victim?.kill('SIGKILL');
spawner.close();
process.stdout.write(`${JSON.stringify({ reused, victimKilled, straggler, stragglerKilled })}\n`);
process.exit(0);
