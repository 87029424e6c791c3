import type {
  AuthMessage,
  StatusClient,
  StatusJob,
  StatusMessage,
  StatusUser,
  WireText,
} from '../protocol/messages.js';
import type { RemoteJob } from './remote-job.js';

/** A status reply lists at most this many jobs (running ones first). */
export const MAX_STATUS_JOBS = 500;
/** Longest command text in a status reply. */
export const MAX_STATUS_COMMAND_CHARS = 200;
/** Longest client field (user, host, build) in a status reply. */
const MAX_FIELD_CHARS = 200;

/** One authenticated connection, as `mpm status` sees it. */
export interface StatusEntry {
  readonly client: Omit<StatusClient, 'running' | 'queued'>;
  /** Whose share of the fair queue its jobs take (the scheduler's user). */
  readonly user: string;
  /** The session's live jobs (admitting, queued or running), by id. */
  readonly jobs: ReadonlyMap<number, RemoteJob>;
  /** The connection ended: it is no longer listed. */
  untrack(): void;
}

/** Authenticated connections per agent (keyed by the agent's shared context). */
const registries = new WeakMap<object, Set<StatusEntry>>();

const field = (v: string): string => v.slice(0, MAX_FIELD_CHARS);

/**
 * Lists an authenticated connection in its agent's status replies until
 * `untrack()`. `client` is what the client said about itself in its auth
 * message (validated by the message schema); long fields are cut. `user`
 * is the user its jobs are queued for.
 */
export function trackClient(
  agent: object,
  client: AuthMessage['client'],
  jobs: ReadonlyMap<number, RemoteJob>,
  user: string,
): StatusEntry {
  let registry = registries.get(agent);
  if (!registry) registries.set(agent, (registry = new Set()));
  const set = registry;
  const entry: StatusEntry = {
    client: {
      user: field(client.user),
      host: field(client.host),
      pid: client.pid,
      build: field(client.build),
    },
    user: field(user),
    jobs,
    untrack: () => set.delete(entry),
  };
  registry.add(entry);
  return entry;
}

const wireString = (t: WireText): string =>
  typeof t === 'string' ? t : Buffer.from(t).toString('utf8');

/**
 * What a job runs, for people: the line of a `SHELL -c LINE` job (how make
 * recipes arrive), else the argv joined by spaces; capped.
 */
export function jobCommandText(argv: readonly WireText[]): string {
  const words = argv.map(wireString);
  const flag = words[words.length - 2];
  const text =
    words.length >= 3 && flag !== undefined && /^-[a-z]*c$/.test(flag)
      ? words[words.length - 1]!
      : words.join(' ');
  return text.length > MAX_STATUS_COMMAND_CHARS
    ? `${text.slice(0, MAX_STATUS_COMMAND_CHARS - 1)}…`
    : text;
}

/**
 * The agent's answer to a status-request: every other authenticated
 * connection with its running and queued counts, the users with jobs here
 * (summed over their builds, by name), and the jobs on this node, running
 * first (oldest start first), then waiting (oldest first).
 */
export function statusReply(agent: object, id: number, asker?: StatusEntry): StatusMessage {
  const clients: StatusClient[] = [];
  const running: { job: RemoteJob; build: string; at: number }[] = [];
  const waiting: { job: RemoteJob; build: string; at: number }[] = [];
  const users = new Map<string, StatusUser>();
  for (const entry of registries.get(agent) ?? []) {
    if (entry === asker) continue;
    let r = 0;
    let q = 0;
    for (const job of entry.jobs.values()) {
      const startedAt = job.startedAt;
      if (job.state === 'running' && startedAt !== undefined) {
        r++;
        running.push({ job, build: entry.client.build, at: startedAt });
      } else if (job.state === 'queued' || job.state === 'admitting') {
        q++;
        waiting.push({ job, build: entry.client.build, at: job.queuedAtMs });
      }
    }
    clients.push({ ...entry.client, running: r, queued: q });
    if (r + q > 0) {
      const u = users.get(entry.user) ?? { user: entry.user, builds: 0, running: 0, queued: 0 };
      users.set(entry.user, {
        ...u,
        builds: u.builds + 1,
        running: u.running + r,
        queued: u.queued + q,
      });
    }
  }
  running.sort((a, b) => a.at - b.at);
  waiting.sort((a, b) => a.at - b.at);
  const all = [...running, ...waiting];
  const jobs: StatusJob[] = all.slice(0, MAX_STATUS_JOBS).map(({ job, build }) => ({
    build,
    command: jobCommandText(job.message.argv),
    cwd: job.message.cwd,
    startedAtMs: job.state === 'running' ? (job.startedAt ?? null) : null,
  }));
  const reply: StatusMessage = {
    type: 'status',
    id,
    clients,
    users: [...users.values()].sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0)),
    jobs,
  };
  if (all.length > jobs.length) reply.jobsLeftOut = all.length - jobs.length;
  return reply;
}
