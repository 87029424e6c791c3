/*
 * mpmake-spawnd: the agent's job spawner. Node's child_process.spawn forks
 * the whole agent, and fork's cost grows with the agent's memory: several
 * ms per job, more than many recipes cost. This small process is started
 * once per agent; forking it costs microseconds. The agent sends it one
 * request per job over stdin and reads replies on stdout:
 *
 *   mpmake-spawnd [LEASEFILE]
 *
 * Frames: u32 big-endian length, then the payload.
 * SPAWN  (agent -> here): u8 1, u32 id, u32 umask, u32 flags (bit 0: stderr
 *        goes where stdout goes; bit 1: revalidate inputs first), u32 lease
 *        slot (0xffffffff: none), u32 uid, u32 gid (0xffffffff: unchanged),
 *        u32 ngroups, u32 groups[ngroups], u32 argc, u32 envc, then
 *        NUL-terminated: stdout FIFO path, stderr FIFO path (empty when
 *        merged), cwd, target (absolute path of the file the job makes, or
 *        empty), argv..., env ("NAME=value")...; with bit 1, then the
 *        NUL-terminated path of the report FIFO and, to the frame's end, an
 *        EXPECT payload (shim-protocol.ts): the job's inputs as their writer
 *        saw them.
 * OPENED (agent -> here): u8 2, u32 id: the agent has the FIFOs' read ends.
 * SIGNAL (agent -> here): u8 3, u32 id, u32 signal, u32 flags (bit 0:
 *        sweep: when the job ends, kill what is left of its process group).
 * STARTED (here -> agent): u8 1, u32 id, i32 pid (or -errno).
 * EXITED  (here -> agent): u8 2, u32 id, i32 exit code (or -1), i32 signal,
 *         u32 CPU time high, u32 CPU time low: user + system µs of the job
 *         and the children it waited for (wait4's rusage).
 *
 * The job's output goes through FIFOs that this process creates and the
 * agent opens and then unlinks (Node cannot receive file descriptors). Each job runs in its
 * own session and process group, stdin /dev/null. When the agent dies (even
 * by SIGKILL: PR_SET_PDEATHSIG) or closes stdin, every job's process group
 * is killed, so no job outlives its agent.
 *
 * Leases (lease.h): a job with a lease slot runs only while the agent keeps
 * that slot's deadline in the future; this process checks it every
 * LEASE_POLL_MS on its own, so a frozen agent cannot keep a job alive. A
 * job killed for a lapsed lease, or because the agent went away, leaves no
 * half-made target: as make does for a recipe killed by a signal, the
 * target is deleted when it is a regular file that changed since the job
 * started.
 *
 * Inputs another machine wrote (flag bit 1): the job's own process, once it
 * is the job's user in the job's directory, waits until it sees each as
 * its writer did (revalidate.h: statx with AT_STATX_FORCE_SYNC, at most the
 * EXPECT's bound), writes the FRESH payload (u32 lag µs, u32 retries, u32
 * stale count, stale paths) into the report FIFO and closes it; then it
 * execs the job, or, with a file still stale, exits 127 without running
 * it. The wait is in the job's process, not here: other jobs' spawns never
 * wait behind it, and a signal for the job (a cancel) ends it unrun.
 *
 * Signals reach a job's process group only from here, and only while its
 * leader (the job's first process, whose pid is the group's id) is not yet
 * reaped: until then no other process or group can get that id, so a
 * signal can never reach an unrelated group that reused it. A job signalled
 * with the sweep flag (the agent's cancel) has what is left of its group
 * killed when its leader ends, while the unreaped leader still holds the id.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec-failed.h"
#include "lease.h"
#include "../shim/revalidate.h"

#define MAX_FRAME (64u * 1024 * 1024)
#define MAX_JOBS 65536
#define NO_ID 0xffffffffu

struct job {
  pid_t pid;
  uint32_t id;
  char *out, *err;
  /* Our own ends of the job's FIFOs, held until the agent has opened its
     read ends: a FIFO's buffered output is lost when every end is closed,
     and a quick job may be over before the agent gets to it. */
  int wo, we, wr;
  int reaped, opened;
  uint32_t lease;
  /* Killed by us (lapsed lease, agent gone): its target must not look built. */
  int killed;
  /* Signalled by the agent: what is left of its group dies with its leader. */
  int sweep;
  /* When its end began (lease.h: target_remove_if_changed). */
  uint64_t ended_ns;
  struct target_state target;
};

static struct job jobs[MAX_JOBS];
static int sigpipe_fds[2];
static int lease_fd = -1;
/* Jobs with a lease not yet killed: while any, leases are checked. */
static int leased_jobs;

static uint32_t get_u32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void put_u32(unsigned char *p, uint32_t v) {
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}

static void write_all(int fd, const unsigned char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      _exit(3); /* the agent is gone */
    }
    buf += w;
    n -= (size_t)w;
  }
}

static void reply(uint8_t type, uint32_t id, int32_t a, int32_t b, int with_b) {
  unsigned char f[17];
  uint32_t len = with_b ? 13 : 9;
  put_u32(f, len);
  f[4] = type;
  put_u32(f + 5, id);
  put_u32(f + 9, (uint32_t)a);
  put_u32(f + 13, (uint32_t)b);
  write_all(1, f, 4 + len);
}

static void reply_exit(uint32_t id, int32_t code, int32_t sig, uint64_t cpu_us) {
  unsigned char f[25];
  put_u32(f, 21);
  f[4] = 2;
  put_u32(f + 5, id);
  put_u32(f + 9, (uint32_t)code);
  put_u32(f + 13, (uint32_t)sig);
  put_u32(f + 17, (uint32_t)(cpu_us >> 32));
  put_u32(f + 21, (uint32_t)cpu_us);
  write_all(1, f, sizeof f);
}

static uint64_t cpu_us_of(const struct rusage *ru) {
  return (uint64_t)ru->ru_utime.tv_sec * 1000000u + (uint64_t)ru->ru_utime.tv_usec +
         (uint64_t)ru->ru_stime.tv_sec * 1000000u + (uint64_t)ru->ru_stime.tv_usec;
}

/*
 * Signals job `pid`'s process group; before the job has made its session
 * (just forked, signals blocked until then), the job itself, which is all
 * of it then. Either way its pid is unreaped, so it names the job.
 */
static void signal_group(pid_t pid, int sig) {
  if (kill(-pid, sig) != 0 && errno == ESRCH) kill(pid, sig);
}

static void kill_all_and_exit(int code) {
  uint64_t now = lease_now_ns();
  for (int i = 0; i < MAX_JOBS; i++)
    if (jobs[i].pid > 0 && !jobs[i].reaped) signal_group(jobs[i].pid, SIGKILL);
  /* Then, once each is dead, its half-made target goes. */
  for (int i = 0; i < MAX_JOBS; i++) {
    if (jobs[i].pid <= 0 || jobs[i].reaped) continue;
    while (waitpid(jobs[i].pid, NULL, 0) < 0 && errno == EINTR) {
    }
    target_remove_if_changed(&jobs[i].target, jobs[i].killed ? jobs[i].ended_ns : now);
  }
  _exit(code);
}

/* Kills every job whose lease has lapsed (or was revoked). */
static void check_leases(void) {
  if (leased_jobs == 0) return;
  uint64_t now = lease_now_ns();
  for (int i = 0; i < MAX_JOBS && leased_jobs > 0; i++) {
    struct job *j = &jobs[i];
    if (j->pid <= 0 || j->reaped || j->killed || j->lease == NO_ID) continue;
    uint64_t deadline = lease_deadline(lease_fd, j->lease);
    if (deadline > now) continue;
    signal_group(j->pid, SIGKILL);
    j->killed = 1;
    /* Revoked (0): the client is gone; now is when the end began. */
    j->ended_ns = deadline ? deadline : now;
    leased_jobs--;
  }
}

static void on_signal(int sig) {
  if (sig == SIGCHLD) {
    int saved = errno;
    char c = 0;
    if (write(sigpipe_fds[1], &c, 1) < 0) { /* full: a wakeup is pending anyway */ }
    errno = saved;
  } else {
    kill_all_and_exit(128 + sig);
  }
}

/* Next NUL-terminated string in [*p, end), or NULL. */
static char *next_str(unsigned char **p, unsigned char *end) {
  unsigned char *s = *p;
  unsigned char *z = memchr(s, 0, (size_t)(end - s));
  if (!z) return NULL;
  *p = z + 1;
  return (char *)s;
}


static void child_fail(const char *what, const char *detail) {
  dprintf(2, "mpm agent: %s: %s\n", what, detail);
  _exit(127);
}

/* Every SPAWN frame with an id is answered, a malformed one with -EINVAL
   and one over the argv/env counts with -E2BIG: a job never waits for an
   answer that does not come (and holds its slot forever). */
static void spawn(unsigned char *p, unsigned char *end) {
  if (end - p < 4) return; /* no id: nothing can be answered */
  uint32_t id = get_u32(p);
  char **argv = NULL, **envp = NULL;
  struct expectations inputs;
  memset(&inputs, 0, sizeof inputs);
  if (end - p < 32) goto bad;
  uint32_t mask = get_u32(p + 4), flags = get_u32(p + 8);
  uint32_t lease = get_u32(p + 12);
  uint32_t uid = get_u32(p + 16), gid = get_u32(p + 20), ngroups = get_u32(p + 24);
  p += 28;
  if (ngroups > 1024 || end - p < (long)(4 * ngroups + 8)) goto bad;
  gid_t groups[1024];
  for (uint32_t i = 0; i < ngroups; i++, p += 4) groups[i] = get_u32(p);
  uint32_t argc = get_u32(p), envc = get_u32(p + 4);
  p += 8;
  if (argc == 0) goto bad;
  if (argc > 1u << 20 || envc > 1u << 20) {
    reply(1, id, -E2BIG, 0, 0);
    goto done;
  }
  char *out = next_str(&p, end), *err = next_str(&p, end), *cwd = next_str(&p, end);
  char *target = next_str(&p, end);
  argv = calloc(argc + 1, sizeof *argv);
  envp = calloc(envc + 1, sizeof *envp);
  if (!out || !err || !cwd || !target || !argv || !envp) goto bad;
  for (uint32_t i = 0; i < argc; i++)
    if (!(argv[i] = next_str(&p, end))) goto bad;
  for (uint32_t i = 0; i < envc; i++)
    if (!(envp[i] = next_str(&p, end))) goto bad;
  /* The inputs to revalidate: parsed here (a malformed list is answered),
     waited for in the job's process. */
  char *report = NULL;
  if (flags & 2) {
    if (!(report = next_str(&p, end)) || !report[0]) goto bad;
    if (parse_expect(p, (size_t)(end - p), &inputs) != 0) goto bad;
  }

  /* A lease that has already lapsed starts nothing: the client may be
     running this job elsewhere by now. */
  if (lease != NO_ID && (lease_fd < 0 || lease_deadline(lease_fd, lease) <= lease_now_ns())) {
    reply(1, id, -ETIMEDOUT, 0, 0);
    goto done;
  }
  int slot = -1;
  for (int i = 0; i < MAX_JOBS; i++)
    if (jobs[i].pid == 0) { slot = i; break; }
  struct target_state before;
  target_note(&before, target);
  errno = 0;
  if (slot < 0 || mkfifo(out, 0600) != 0 || (err[0] && mkfifo(err, 0600) != 0) ||
      (report && mkfifo(report, 0600) != 0)) {
    reply(1, id, -(errno ? errno : EAGAIN), 0, 0);
    free(before.path);
    goto done;
  }
  /* The job's ends are opened here, before the fork (O_RDWR does not wait
     for a reader): the job is a writer from its first instant, so the
     agent, opening the read ends later, can never see an early EOF, and
     nothing waits for anything. */
  int wo = open(out, O_RDWR | O_CLOEXEC);
  int we = err[0] ? open(err, O_RDWR | O_CLOEXEC) : -1;
  int wr = report ? open(report, O_RDWR | O_CLOEXEC) : -1;
  /* No signal reaches the child before it has our handlers off (one of
     them would run kill_all_and_exit there, on its copy of the table). */
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  pid_t pid = (wo < 0 || (err[0] && we < 0) || (report && wr < 0)) ? -1 : fork();
  int fork_errno = errno;
  if (pid != 0) sigprocmask(SIG_SETMASK, &old, NULL);
  if (pid < 0) {
    reply(1, id, -fork_errno, 0, 0);
    if (wo >= 0) close(wo);
    if (we >= 0) close(we);
    if (wr >= 0) close(wr);
    unlink(out);
    if (err[0]) unlink(err);
    if (report) unlink(report);
    free(before.path);
    goto done;
  }
  if (pid == 0) {
    signal(SIGCHLD, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    setsid();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int in = open("/dev/null", O_RDONLY);
    if (in < 0) _exit(127);
    dup2(in, 0);
    dup2(wo, 1);
    dup2(err[0] && !(flags & 1) ? we : wo, 2);
    /* The report's end stays open (fd 3) until the inputs are judged. */
    if (report && wr != 3) dup2(wr, 3);
    for (int fd = report ? 4 : 3; fd < 1024; fd++) close(fd);
    umask((mode_t)(mask & 0777));
    if (gid != NO_ID && (setgroups(ngroups, groups) != 0 || setgid(gid) != 0))
      child_fail("cannot switch group", strerror(errno));
    if (uid != NO_ID && setuid(uid) != 0) child_fail("cannot switch user", strerror(errno));
    if (chdir(cwd) != 0) child_fail(cwd, strerror(errno));
    if (report) {
      uint32_t lag = 0, retries = 0;
      size_t len = 0, stale = revalidate(&inputs, &lag, &retries);
      unsigned char *fresh = fresh_payload(&inputs, lag, retries, stale, &len);
      for (size_t off = 0; fresh && off < len;) {
        ssize_t w = write(3, fresh + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break; /* no report: the agent says the job ended unjudged */
        off += (size_t)w;
      }
      close(3);
      if (fresh == NULL || stale > 0) _exit(127); /* the agent says why */
    }
    extern char **environ;
    environ = envp;
    execvp(argv[0], argv);
    exec_failed(argv[0]);
  }
  jobs[slot].pid = pid;
  jobs[slot].id = id;
  jobs[slot].wo = wo;
  jobs[slot].we = we;
  jobs[slot].wr = wr;
  jobs[slot].out = strdup(out);
  jobs[slot].err = err[0] ? strdup(err) : NULL;
  jobs[slot].lease = lease;
  jobs[slot].target = before;
  if (lease != NO_ID) leased_jobs++;
  reply(1, id, pid, 0, 0);
  goto done;
bad:
  reply(1, id, -EINVAL, 0, 0);
done:
  free(inputs.e);
  free(argv);
  free(envp);
}

static void release_slot(int i) {
  free(jobs[i].out);
  free(jobs[i].err);
  free(jobs[i].target.path);
  memset(&jobs[i], 0, sizeof jobs[i]);
}

static void close_ends(int i) {
  if (jobs[i].wo > 0) close(jobs[i].wo);
  if (jobs[i].we > 0) close(jobs[i].we);
  if (jobs[i].wr > 0) close(jobs[i].wr);
  jobs[i].wo = jobs[i].we = jobs[i].wr = -1;
}

/* OPENED: drop our ends; the job's own ends now decide the EOF. */
static void opened(unsigned char *p, unsigned char *end) {
  if (end - p < 4) return;
  uint32_t id = get_u32(p);
  for (int i = 0; i < MAX_JOBS; i++) {
    if (jobs[i].pid == 0 || jobs[i].id != id) continue;
    close_ends(i);
    jobs[i].opened = 1;
    if (jobs[i].reaped) release_slot(i);
    return;
  }
}

/* SIGNAL: the job's group gets the signal while its leader is unreaped. */
static void signal_job(unsigned char *p, unsigned char *end) {
  if (end - p < 12) return;
  uint32_t id = get_u32(p), sig = get_u32(p + 4), flags = get_u32(p + 8);
  for (int i = 0; i < MAX_JOBS; i++) {
    if (jobs[i].pid == 0 || jobs[i].id != id) continue;
    if (jobs[i].reaped) return; /* its id may be another's by now */
    if (sig > 0 && sig < (uint32_t)NSIG) signal_group(jobs[i].pid, (int)sig);
    if (flags & 1) jobs[i].sweep = 1;
    return;
  }
}

static void reap(void) {
  for (;;) {
    /* Which child ended, without reaping it yet (WNOWAIT): a zombie still
       holds its pid, and so its group's id. */
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) return;
    pid_t pid = info.si_pid;
    struct job *j = NULL;
    for (int i = 0; i < MAX_JOBS && !j; i++)
      if (jobs[i].pid == pid && !jobs[i].reaped) j = &jobs[i];
    if (j && j->sweep) signal_group(pid, SIGKILL);
    int status;
    struct rusage ru;
    pid_t got;
    while ((got = wait4(pid, &status, 0, &ru)) < 0 && errno == EINTR) {
    }
    if (got != pid) return; /* never expected: the next SIGCHLD tries again */
    if (!j) continue;
    if (j->killed) target_remove_if_changed(&j->target, j->ended_ns);
    else if (j->lease != NO_ID) leased_jobs--;
    if (WIFSIGNALED(status)) reply_exit(j->id, -1, WTERMSIG(status), cpu_us_of(&ru));
    else reply_exit(j->id, WEXITSTATUS(status), 0, cpu_us_of(&ru));
    /* The FIFOs are the agent's to unlink, once it has opened them. */
    j->reaped = 1;
    if (j->opened) release_slot((int)(j - jobs));
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && (lease_fd = open(argv[1], O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) return 2;
  if (pipe(sigpipe_fds) != 0) return 2;
  fcntl(sigpipe_fds[0], F_SETFL, O_NONBLOCK);
  fcntl(sigpipe_fds[1], F_SETFL, O_NONBLOCK);
  fcntl(sigpipe_fds[0], F_SETFD, FD_CLOEXEC);
  fcntl(sigpipe_fds[1], F_SETFD, FD_CLOEXEC);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGCHLD, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGINT, SIG_IGN); /* a Ctrl-C at the agent's terminal is the agent's to handle */
  signal(SIGPIPE, SIG_IGN);
  pid_t agent = getppid();
  if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != agent) return 3;

  size_t cap = 1 << 16, have = 0;
  unsigned char *buf = malloc(cap);
  if (!buf) return 2;
  for (;;) {
    struct pollfd fds[2] = {{0, POLLIN, 0}, {sigpipe_fds[0], POLLIN, 0}};
    int ready = poll(fds, 2, leased_jobs > 0 ? LEASE_POLL_MS : -1);
    /* Before check_leases, whose kill() may set errno (ESRCH for a group
       already gone): a poll cut short by SIGCHLD must not read as a failure
       that ends this process and every job it runs. */
    int poll_errno = errno;
    check_leases();
    if (ready < 0) {
      if (poll_errno == EINTR) continue;
      kill_all_and_exit(4);
    }
    if (fds[1].revents) {
      char drain[64];
      while (read(sigpipe_fds[0], drain, sizeof drain) > 0) {
      }
      reap();
    }
    if (fds[0].revents) {
      if (have == cap) {
        cap *= 2;
        if (cap > MAX_FRAME + 8) kill_all_and_exit(5);
        unsigned char *nb = realloc(buf, cap);
        if (!nb) kill_all_and_exit(5);
        buf = nb;
      }
      ssize_t n = read(0, buf + have, cap - have);
      if (n == 0) kill_all_and_exit(0); /* the agent closed our stdin */
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        kill_all_and_exit(4);
      }
      have += (size_t)n;
      size_t off = 0;
      while (have - off >= 4) {
        uint32_t len = get_u32(buf + off);
        if (len > MAX_FRAME || len < 1) kill_all_and_exit(5);
        if (have - off - 4 < len) break;
        unsigned char *f = buf + off + 4;
        if (f[0] == 1) spawn(f + 1, f + len);
        else if (f[0] == 2) opened(f + 1, f + len);
        else if (f[0] == 3) signal_job(f + 1, f + len);
        off += 4 + len;
      }
      memmove(buf, buf + off, have - off);
      have -= off;
    }
  }
}
