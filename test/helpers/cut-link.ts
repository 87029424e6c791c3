/**
 * The cut-link fault of issue 13 (and issue 11's test bed bullet): the
 * one-writer build (test/helpers/one-writer.ts) on the cluster test bed,
 * the tree and the write log on the shared sshfs tree; mid-build one node's
 * link is cut (`ip link set … down` at the switch). The build must end as
 * plain make's, and nothing the cut node ran may write after its job was
 * re-run elsewhere: the link comes back after the build, the cut node's
 * file system client then delivers whatever it still held, and the log
 * (whose lines land in the order the file server gets them) and the targets
 * are read only after that. Used by test/cluster/bed-build.test.ts (once)
 * and benchmarks/one-writer.ts (20 times, on one bed).
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bed, Host } from './cluster-bed.js';
import {
  linesAfterStep,
  oneWriterMakefile,
  overlapsIn,
  TARGET_NAMES,
  wholeTarget,
  type FaultRun,
} from './one-writer.js';
import { eventually, sleepers } from './procs.js';

/**
 * When the link is cut: `quiet`, while every job of the node pauses
 * between two writes (what mpmake answers for); `any`, at whatever moment
 * (a write the node has sent and the file server not yet received is then
 * delivered when the link returns: sshfs, like an NFS hard mount, retries
 * it, and nothing on the node can call it back).
 */
export type CutMoment = 'quiet' | 'any';

export interface CutLinkRun extends Omit<FaultRun, 'fault'> {
  fault: 'cut-link';
  /** Lines of a copy that reached the log after a later copy's first line. */
  lateLines: FaultRun['overlaps'];
  /** The cut node's agent id. */
  victim: string;
  /** When the link was cut, µs since the epoch (the log's clock). */
  cutAtUs: number;
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
  opts: { heartbeatTimeoutMs: number; at: CutMoment },
): Promise<CutLinkRun> {
  const dir = join(bed.exportDir, name);
  mkdirSync(dir);
  const sleep = `0.2${Math.floor(Math.random() * 9000 + 1000)}`;
  const PAUSE_STEP = 3;
  const pause = opts.at === 'quiet' ? { step: PAUSE_STEP, sleeps: 8 } : undefined;
  writeFileSync(join(dir, 'Makefile'), oneWriterMakefile(sleep, pause));
  await bed.stopAgents();
  const agents = await bed.startAgents({ slots: 2 });
  const reportFile = join(bed.runDir, `${name}.report.json`);
  const build = bed.mpmake(
    [
      `--mp-heartbeat-timeout=${opts.heartbeatTimeoutMs}`,
      '--mp-quiet',
      `--mp-report=${reportFile}`,
      `-j${TARGET_NAMES.length}`,
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
  await eventually(() => sleepers(sleep).length === 0, 60_000);
  const strays = sleepers(sleep).length;
  await bed.stopAgents(agents);
  await victim!.sh(`cat ${join(bed.mountPath, name, 'writes.log')} > /dev/null`);
  const text = readText(log);
  const { overlaps, copies } = overlapsIn(text);
  const lateLines = overlapsIn(text, 'order').overlaps;
  const want = wholeTarget();
  const incomplete = TARGET_NAMES.filter((t) => readText(join(dir, t)) !== want);
  const expected = new Set(['Makefile', 'writes.log', ...TARGET_NAMES]);
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
    report: JSON.parse(readText(reportFile) || '{}') as FaultRun['report'],
  };
}
