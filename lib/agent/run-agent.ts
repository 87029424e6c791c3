// msgpackr's main entry: it gives frame-codec's decoder (the same module) the
// native string extractor, worth it in a long-lived agent (jobs carry envs).
import 'msgpackr';
import { logToStderr } from './agent-log.js';
import { checkRunAs, resolveAgentOptions, type RawAgentOptions } from './agent-options.js';
import { AgentServer } from './agent-server.js';
import { packageVersion } from './package-root.js';

/**
 * `mpm agent`: validates the options, listens, prints the one line scripts
 * read the port from, and serves until SIGTERM or SIGINT (or, with
 * --exit-with-stdin, the end of stdin), then kills every job and resolves
 * with the exit status (0). Bad options reject with a
 * UsageError before anything listens.
 */
export async function runAgent(raw: RawAgentOptions): Promise<number> {
  const options = await checkRunAs(await resolveAgentOptions(raw), process.geteuid?.() ?? -1);
  const server = await AgentServer.start(options, logToStderr, packageVersion());
  // A reader that went away must not crash the agent.
  process.stdout.on('error', () => {});
  process.stdout.write(
    `mpm agent listening on ${server.address} slots=${options.slots} id=${server.nodeId}\n`,
  );
  const { runAs, allow } = options;
  if (options.plaintextOffLoopback) {
    logToStderr(
      `warning: listening on ${server.address} without TLS (--insecure): anyone on the network ` +
        'path can read jobs and their environments, and relay or change them',
    );
  }
  const { munge } = options;
  const who = munge
    ? `each client's own user, proved by MUNGE (${munge.socket}; uid >= ${munge.minUid}` +
      `${options.allowRoot ? ' or root' : ''})`
    : runAs
      ? `${runAs.name} (uid ${runAs.uid})`
      : 'this user';
  logToStderr(
    `secret ${options.secret ? 'required' : 'NOT required'}; TLS ${options.tls ? 'on' : 'off'}; ` +
      `clients from ${allow ? allow.toString() : 'anywhere'}; ` +
      `jobs run as ${who}; ` +
      `roots ${options.roots.join(', ')}`,
  );
  return new Promise((resolve) => {
    const shutDown = (why: string): void => {
      logToStderr(`${why}: shutting down, killing all jobs`);
      void server.close().then(() => resolve(0));
    };
    // Kept installed: a second signal while jobs die must not cut that short.
    process.on('SIGTERM', () => shutDown('SIGTERM'));
    process.on('SIGINT', () => shutDown('SIGINT'));
    if (raw.exitWithStdin) {
      process.stdin.on('error', () => {});
      process.stdin.once('close', () => shutDown('stdin closed'));
      process.stdin.resume();
    }
  });
}
