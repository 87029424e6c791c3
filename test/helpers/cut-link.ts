/**
 * The cut-link fault of issue 13 (and issue 11's test bed bullet): the
 * one-writer build (test/helpers/one-writer.ts) on the cluster test bed,
 * the tree and the write log on the shared sshfs tree; mid-build one node's
 * link is cut (`ip link set … down` at the switch). The build must end as
 * plain make's, and nothing the cut node ran may write after its job was
 * re-run elsewhere: the link comes back after the build, the cut node's
 * file system client then delivers whatever it still held, and the log
 * (whose lines land in the order the file server gets them) and the targets
 * are read only after that. With `fence`, mpmake runs the bed's fence
 * command (the node's sftp sessions at the file server end), and the node's
 * mount is made again afterwards. Used by test/cluster/bed-build.ts and
 * bed-fence.ts (once each) and benchmarks/one-writer.ts (20 times, on one bed).
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bed, Host } from './cluster-bed.js';
import {
  linesAfterStep,
  oneWriterMakefile,
  overlapsIn,
  streamMakefile,
  TARGET_NAMES,
  wholeTarget,
  type FaultRun,
} from './one-writer.js';
import { eventually, runningWith, sleepers } from './procs.js';

/**
 * When the link is cut: `quiet`, while every job of the node pauses
 * between two writes (what mpmake answers for); `any`, at whatever moment
 * (a write the node has sent and the file server not yet received is then
 * delivered when the link returns: sshfs, like an NFS hard mount, retries
 * it, and nothing on the node can call it back).
 */
export type CutMoment = 'quiet' | 'any';

export interface CutLinkOptions {
  heartbeatTimeoutMs: number;
  at: CutMoment;
  /**
   * Recipes append to the log without a pause (streamMakefile) instead of
   * writing eight steps apart; the cut then falls in the middle of a stream
   * of writes (with `at: 'any'`).
   */
  stream?: boolean;
  /** Build with --mp-fence: the bed's fence ends the node's sftp sessions at the file server. */
  fence?: boolean;
}

export interface CutLinkRun extends Omit<FaultRun, 'fault'> {
  fault: 'cut-link';
  /** Lines of a copy that reached the log after a later copy's first line. */
  lateLines: FaultRun['overlaps'];
  /** The cut node's agent id. */
  victim: string;
  /** When the link was cut, µs since the epoch (the log's clock). */
  cutAtUs: number;
  /** Lines the cut node's copies logged in all (by the end). */
  victimLines: number;
}

const readText = (path: string): string => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
};

/**
 * One build in a new directory `name` of the bed's tree, on fresh agents of
 * two slots on every node (left running); one node's link is cut once it
 * has written, and restored after the build.
 */
export async function runCutLink(
  bed: Bed,
  name: string,
  opts: CutLinkOptions,
): Promise<CutLinkRun> {
  const dir = join(bed.exportDir, name);
  mkdirSync(dir);
  const sleep = `0.2${Math.floor(Math.random() * 9000 + 1000)}`;
  const PAUSE_STEP = 3;
  const pause = opts.at === 'quiet' ? { step: PAUSE_STEP, sleeps: 8 } : undefined;
  const marker = `stream-${sleep}`;
  // Two streams (on two nodes), not four: a stream keeps a core busy.
  const targets = opts.stream ? TARGET_NAMES.slice(0, 2) : TARGET_NAMES;
  const makefile = opts.stream
    ? streamMakefile(5, marker, targets)
    : oneWriterMakefile(sleep, pause);
  writeFileSync(join(dir, 'Makefile'), makefile);
  const running = (): number => (opts.stream ? runningWith(marker).length : sleepers(sleep).length);
  await bed.stopAgents();
  const agents = await bed.startAgents({ slots: 2 });
  const reportFile = join(bed.runDir, `${name}.report.json`);
  const build = bed.mpmake(
    [
      `--mp-heartbeat-timeout=${opts.heartbeatTimeoutMs}`,
      ...(opts.fence ? [`--mp-fence=${bed.fenceCommand()}`, '--mp-fence-timeout=20000'] : []),
      '--mp-quiet',
      `--mp-report=${reportFile}`,
      `-j${targets.length}`,
    ],
    { cwd: join(bed.mountPath, name), timeoutMs: 120_000 },
  );
  const log = join(dir, 'writes.log');
  /** Lines logged so far, by node and by copy (`node pid`). */
  const counts = (): { byNode: Map<string, number>; byCopy: Map<string, number> } => {
    const byNode = new Map<string, number>();
    const byCopy = new Map<string, number>();
    for (const l of readText(log).split('\n')) {
      const [w, node, pid] = l.split(' ');
      if (w !== 'w' || !node || !pid) continue;
      byNode.set(node, (byNode.get(node) ?? 0) + 1);
      byCopy.set(`${node} ${pid}`, (byCopy.get(`${node} ${pid}`) ?? 0) + 1);
    }
    return { byNode, byCopy };
  };
  // Cut a node a few steps into its jobs, while another node writes too
  // (`quiet`: once each of its jobs has reached the pause).
  let victim: Host | undefined;
  let victimId = '';
  const ready = (): boolean => {
    const { byNode, byCopy } = counts();
    const nodes = [...byNode].filter(([n]) => n !== 'local').sort((a, b) => b[1] - a[1]);
    if (nodes.length < 2) return false;
    const pick =
      opts.at === 'any'
        ? nodes.find(([, lines]) => lines >= 6)
        : nodes.find(([n]) => {
            const copies = [...byCopy].filter(([c]) => c.startsWith(`${n} `));
            return copies.every(([, lines]) => lines === linesAfterStep(PAUSE_STEP));
          });
    if (!pick) return false;
    victimId = pick[0];
    victim = agents.find((a) => a.id === victimId)?.node;
    return victim !== undefined;
  };
  if (!(await eventually(ready, 60_000))) {
    const r = await build;
    throw new Error(
      `the build never got going on two nodes: ${JSON.stringify([...counts().byNode])}; ` +
        `mpmake: ${r.stderr.toString()}`,
    );
  }
  // At any moment: somewhere in the next second of the node's writes.
  if (opts.at === 'any') await new Promise((r) => setTimeout(r, Math.random() * 1000));
  const cutAtUs = Date.now() * 1000;
  await bed.cutLink(victim!);
  const faultAt = Date.now();
  let result;
  try {
    result = await build;
  } finally {
    await bed.restoreLink(victim!);
  }
  const afterFaultMs = Date.now() - faultAt;
  // The cut node's jobs were killed when their lease lapsed, but a process
  // waiting on the file server ends only once the link is back; then the
  // node's sshfs delivers what it held. One request through its mount, after
  // everything of the build there has ended, has gone behind all of that.
  // Fenced, its sessions at the server are gone: whatever it held meets a
  // closed socket, and its mount is made again.
  await eventually(() => running() === 0, 60_000);
  const strays = running();
  await bed.stopAgents(agents);
  if (opts.fence) await bed.remount(victim!);
  else await victim!.sh(`cat ${join(bed.mountPath, name, 'writes.log')} > /dev/null`);
  const text = readText(log);
  const { overlaps, copies } = overlapsIn(text);
  const lateLines = overlapsIn(text, 'order').overlaps;
  const want = wholeTarget();
  const incomplete = targets.filter((t) => readText(join(dir, t)) !== want);
  const expected = new Set(['Makefile', 'writes.log', ...targets]);
  const leftovers = readdirSync(dir).filter((f) => !expected.has(f));
  return {
    fault: 'cut-link',
    code: result.code,
    stderr: result.stderr.toString(),
    overlaps,
    lateLines,
    copies,
    incomplete,
    leftovers,
    strays,
    afterFaultMs,
    victim: victimId,
    cutAtUs,
    victimLines: counts().byNode.get(victimId) ?? 0,
    report: JSON.parse(readText(reportFile) || '{}') as FaultRun['report'],
  };
}
