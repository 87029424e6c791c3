/*
 * mpmake-exec: the agent's job launcher. Node cannot set a child's umask,
 * make one pipe serve as both stdout and stderr, turn off a pty's NL->CRLF
 * mapping, or pass bytes that are not UTF-8 in argv and environment. This
 * small program does those, then execs the job: one cheap exec instead of a
 * wrapper shell.
 *
 *   mpmake-exec UMASK FLAGS HEXARGS ROOTS -- ARGV...
 *   mpmake-exec UMASK FLAGS HEXARGS ROOTS UID:GID:GROUPS ENVSRC -- ARGV...  (flag u)
 *   mpmake-exec 0 p[u] - ROOTS [UID:GID:GROUPS -] -- PATH                   (flag p)
 *
 * UMASK   octal, e.g. 022.
 * FLAGS   letters, or "-": m = stderr goes where stdout goes (dup2(1, 2));
 *         t = stdout is a pty: clear ONLCR, stdin from /dev/null;
 *         u = started as root: become UID, GID with the supplementary
 *         GROUPS (comma-separated, may be empty; "*" = the groups the
 *         group database gives UID's name, as login does with initgroups)
 *         before anything else, enter the working directory again as that
 *         user, and give the job exactly the environment from ENVSRC. The
 *         agent execs us with an empty environment then, so the dynamic
 *         loader has nothing of the client's (LD_PRELOAD…) to act on as root;
 *         p = probe (the start check) instead of running a job: see probe().
 * HEXARGS comma-separated indices into ARGV whose text is hex-encoded
 *         bytes, or "-".
 * ROOTS   "-", or the agent's --root directories (real paths, hex-encoded,
 *         comma-separated): the job's working directory, as it is once the
 *         job's user has entered it, must be under one of them.
 * ENVSRC  where the job's environment comes from (flag u): "-" = empty;
 *         "fd:N" = NUL-terminated NAME=VALUE entries read from descriptor N
 *         to its end; "file:PATH" = the same in a file only root can read,
 *         removed once read. Never argv: any local user can read argv.
 * MPMAKE_EXEC_HEXENV: comma-separated names of environment variables whose
 *         values are hex-encoded bytes; decoded, and the list removed.
 *
 * MPMAKE_EXEC_LEASE=PATH:SLOT: the job's lease (lease.h), checked every
 *         LEASE_POLL_MS; MPMAKE_EXEC_TARGET: the absolute path of the file
 *         the job makes. Both are taken from our own environment at start
 *         and removed.
 *
 * It stays behind as the job's supervisor: it forks the job and waits for
 * it, and if the agent dies (even by SIGKILL, which the agent cannot catch)
 * the kernel tells it (PR_SET_PDEATHSIG), or the job's lease lapses (the
 * agent frozen, its client gone), it kills the job's whole process group,
 * so no job outlives its agent or its lease; a target the killed job had
 * changed is deleted, as make deletes the target of a recipe killed by a
 * signal. It ends as the job ended:
 * the same exit status, or death by the same signal. No descriptor of the
 * agent's above 2 reaches the job.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "exec-failed.h"
#include "lease.h"

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes hex text in place; returns 0 on success. */
static int unhex(char *s) {
  size_t n = strlen(s);
  if (n % 2) return -1;
  for (size_t i = 0; i < n / 2; i++) {
    int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    s[i] = (char)(hi * 16 + lo);
  }
  s[n / 2] = '\0';
  return 0;
}


static void die(const char *what, const char *detail) {
  fprintf(stderr, "mpm agent: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  _exit(127);
}

#define AGENT_DIED_SIGNAL (SIGRTMIN + 3)
/* How long the cleaner waits for a killed group to be gone. */
#define CLEAN_WAIT_MS 5000

static char *lease_arg, *target_arg;
static int lease_fd = -1;
static uint32_t lease_slot;
static struct target_state target;

/*
 * Kills our process group (the job, its children, and us). Its target must
 * then go, once nothing of the group can write it any more: a cleaner,
 * forked into a session of its own, waits for the group to be gone and
 * deletes the target if the job changed it.
 */
static void kill_group_and_clean(uint64_t ended_ns) {
  pid_t group = getpgrp();
  if (target.path && fork() == 0) {
    setsid();
    for (int i = 0; i < CLEAN_WAIT_MS / 10 && kill(-group, 0) == 0; i++) {
      struct timespec ts = {0, 10 * 1000000L};
      nanosleep(&ts, NULL);
    }
    target_remove_if_changed(&target, ended_ns);
    _exit(0);
  }
  kill(0, SIGKILL);
  _exit(137);
}

static void on_agent_died(int sig) {
  (void)sig;
  kill_group_and_clean(lease_now_ns());
}

static void on_child(int sig) {
  (void)sig; /* only to cut nanosleep short */
}

/* Opens the lease named by MPMAKE_EXEC_LEASE (PATH:SLOT), if there was one. */
static void open_lease(void) {
  if (!lease_arg) return;
  char *colon = strrchr(lease_arg, ':');
  char *end;
  if (!colon) die("bad lease", lease_arg);
  errno = 0;
  unsigned long slot = strtoul(colon + 1, &end, 10);
  if (errno || *end || end == colon + 1 || slot > 0xfffffffeUL) die("bad lease", lease_arg);
  *colon = '\0';
  lease_fd = open(lease_arg, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (lease_fd < 0) die(lease_arg, strerror(errno));
  lease_slot = (uint32_t)slot;
}

/* The deadline of a lapsed lease (the current time if it was revoked); 0 while it runs. */
static uint64_t lease_lapsed(void) {
  if (lease_fd < 0) return 0;
  uint64_t now = lease_now_ns(), deadline = lease_deadline(lease_fd, lease_slot);
  if (deadline > now) return 0;
  return deadline ? deadline : now;
}

#define MAX_GROUPS 1024
#define MAX_ROOTS 256
/* A job's environment is at most 1 MiB (the agent checks); with room to spare. */
#define MAX_ENV_BYTES (4 * 1024 * 1024)
#define MAX_PROBE_BYTES 4096

static char *roots[MAX_ROOTS];
static int nroots;

/* Parses a decimal id; returns 0 on success. */
static int parse_id(const char *s, char **end, unsigned long *out) {
  if (*s < '0' || *s > '9') return -1;
  errno = 0;
  *out = strtoul(s, end, 10);
  return errno != 0 || *out > 0xfffffffeUL ? -1 : 0;
}

/* ROOTS: "-" or comma-separated hex-encoded real paths. */
static void parse_roots(char *arg) {
  if (strcmp(arg, "-") == 0) return;
  for (char *tok = strtok(arg, ","); tok; tok = strtok(NULL, ",")) {
    if (nroots == MAX_ROOTS || unhex(tok) != 0 || tok[0] != '/') die("bad roots", NULL);
    roots[nroots++] = tok;
  }
}

/* Whether the real path `path` is under one of the roots (always, without roots). */
static int under_roots(const char *path) {
  if (nroots == 0) return 1;
  for (int i = 0; i < nroots; i++) {
    size_t n = strlen(roots[i]);
    if (strcmp(roots[i], "/") == 0 || strcmp(path, roots[i]) == 0) return 1;
    if (strncmp(path, roots[i], n) == 0 && path[n] == '/') return 1;
  }
  return 0;
}

/*
 * The working directory the job will really run in (after every chdir,
 * as the job's user) must be under a root: checked here, at exec time, so
 * a symlink swapped after the agent admitted the job leads nowhere.
 */
static void check_cwd_roots(void) {
  static char cwd[PATH_MAX];
  if (nroots == 0) return;
  if (!getcwd(cwd, sizeof cwd)) die("getcwd", strerror(errno));
  if (!under_roots(cwd)) {
    fprintf(stderr, "mpm agent: the working directory %s is outside this agent's --root directories\n", cwd);
    _exit(127);
  }
}

/*
 * Becomes the user in CREDS ("UID:GID:G1,G2,..." or "UID:GID:*"): groups,
 * then gid, then uid, checks that root cannot be regained, and enters the
 * working directory again as that user, so a directory the user may not
 * enter is refused as it would be at a login.
 */
static void drop_privileges(const char *creds) {
  unsigned long uid, gid, g;
  static gid_t groups[MAX_GROUPS];
  size_t ngroups = 0;
  int from_db = 0;
  char *end;
  const char *p = creds;
  if (parse_id(p, &end, &uid) != 0 || *end != ':') die("bad credentials", creds);
  p = end + 1;
  if (parse_id(p, &end, &gid) != 0 || *end != ':') die("bad credentials", creds);
  p = end + 1;
  if (strcmp(p, "*") == 0) from_db = 1;
  else
    while (*p) {
      if (ngroups == MAX_GROUPS || parse_id(p, &end, &g) != 0) die("bad credentials", creds);
      groups[ngroups++] = (gid_t)g;
      if (*end == ',') end++;
      else if (*end != '\0') die("bad credentials", creds);
      p = end;
    }
  static char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) die("getcwd", strerror(errno));
  if (from_db) {
    errno = 0;
    struct passwd *pw = getpwuid((uid_t)uid);
    if (!pw) die("no user with the job's uid", creds);
    if (initgroups(pw->pw_name, (gid_t)gid) != 0) die("initgroups", strerror(errno));
  } else if (setgroups(ngroups, groups) != 0) {
    die("setgroups", strerror(errno));
  }
  if (setgid((gid_t)gid) != 0) die("setgid", strerror(errno));
  if (setuid((uid_t)uid) != 0) die("setuid", strerror(errno));
  if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) die("could not drop root", NULL);
  if (getuid() != (uid_t)uid || geteuid() != (uid_t)uid || getgid() != (gid_t)gid ||
      getegid() != (gid_t)gid)
    die("could not become the job's user", creds);
  if (chdir(cwd) != 0) {
    fprintf(stderr, "mpm agent: cannot enter %s as uid %lu: %s\n", cwd, uid, strerror(errno));
    _exit(127);
  }
}

/* Reads descriptor `fd` to its end (at most MAX_ENV_BYTES); NUL-terminated. */
static char *read_all(int fd, size_t *len) {
  size_t cap = 65536, n = 0;
  char *buf = malloc(cap + 1);
  if (!buf) die("out of memory", NULL);
  for (;;) {
    if (n == cap) {
      if (cap >= MAX_ENV_BYTES) die("environment too large", NULL);
      cap *= 2;
      buf = realloc(buf, cap + 1);
      if (!buf) die("out of memory", NULL);
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die("cannot read the job's environment", strerror(errno));
    if (r == 0) break;
    n += (size_t)r;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

/*
 * The job's environment from ENVSRC (see the top): read while still root,
 * since the file and the agent's end of the pipe are root's.
 */
static char *read_env(const char *src, size_t *len) {
  *len = 0;
  if (strcmp(src, "-") == 0) return NULL;
  int fd;
  if (strncmp(src, "fd:", 3) == 0) {
    char *end;
    long n = strtol(src + 3, &end, 10);
    if (*end != '\0' || n < 3 || n > 1023) die("bad environment source", src);
    fd = (int)n;
  } else if (strncmp(src, "file:", 5) == 0) {
    const char *path = src + 5;
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) die("cannot open the job's environment", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 077) != 0)
      die("the job's environment file is not private to the agent", path);
    unlink(path);
  } else {
    die("bad environment source", src);
  }
  char *block = read_all(fd, len);
  close(fd);
  return block;
}

/* Replaces the environment by the block's NAME=VALUE entries; keeps the TERM
   and PWD node-pty set for a tty job (the only variables we were started with). */
static void set_job_env(char *block, size_t len) {
  char *term = getenv("TERM") ? strdup(getenv("TERM")) : NULL;
  char *pwd = getenv("PWD") ? strdup(getenv("PWD")) : NULL;
  if (clearenv() != 0) die("clearenv", NULL);
  for (size_t at = 0; block && at < len;) {
    char *entry = block + at;
    size_t n = strlen(entry);
    if (!strchr(entry, '=') || entry[0] == '=') die("bad environment entry", entry);
    if (putenv(entry) != 0) die("putenv", strerror(errno));
    at += n + 1;
  }
  if (term && setenv("TERM", term, 1) != 0) die("setenv", strerror(errno));
  if (pwd && setenv("PWD", pwd, 1) != 0) die("setenv", strerror(errno));
  free(term);
  free(pwd);
}

/* Closes every descriptor above 2: nothing of the agent's reaches the job. */
static void close_inherited(void) {
  if (close_range(3, ~0U, 0) == 0) return;
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 1 << 20) max = 1 << 20;
  for (long fd = 3; fd < max; fd++) close((int)fd);
}

/*
 * The start check, as the job's user: does PATH hold the probe file the
 * client just wrote, and may this user write its directory? The path is
 * opened without following a last symlink and without opening anything
 * (O_PATH), so no FIFO or device is ever opened; what was opened must be a
 * regular file whose real path (from the descriptor, so no race) lies under
 * the roots; only then is it read, through that descriptor. One line on
 * stdout says how it went, followed by the content when "ok".
 */
static int probe(const char *path) {
  int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) printf("missing\n");
    else printf("error %s\n", strerror(errno));
    return 0;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    printf("error %s\n", strerror(errno));
    return 0;
  }
  if (!S_ISREG(st.st_mode)) {
    printf("notfile\n");
    return 0;
  }
  char link[64];
  static char real[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, real, sizeof real - 1);
  if (n < 0) {
    printf("error %s\n", strerror(errno));
    return 0;
  }
  real[n] = '\0';
  if (!under_roots(real)) {
    printf("outside %s\n", real);
    return 0;
  }
  int rfd = open(link, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (rfd < 0) {
    printf("error %s\n", strerror(errno));
    return 0;
  }
  static char content[MAX_PROBE_BYTES + 1];
  size_t got = 0;
  while (got < sizeof content) {
    ssize_t r = read(rfd, content + got, sizeof content - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      printf("error %s\n", strerror(errno));
      return 0;
    }
    if (r == 0) break;
    got += (size_t)r;
  }
  char *slash = strrchr(real, '/');
  if (slash == real) slash[1] = '\0';
  else *slash = '\0';
  if (access(real, W_OK) != 0) {
    printf("nowrite %s: %s\n", real, strerror(errno));
    return 0;
  }
  printf("ok\n");
  fwrite(content, 1, got, stdout);
  return 0;
}

/* A signal meant for the job (the agent's cancel) reached us too. */
static volatile sig_atomic_t cancelled;

static void on_cancel(int sig) {
  (void)sig;
  cancelled = 1;
}

/*
 * The job was cancelled and has ended: what is left of our process group
 * (a straggler that ignored the signal) must not outlive it. A child of
 * ours, in the group, waits until we are gone (we must end as the job did),
 * then kills the group: being a member, it holds the group's id until then,
 * so the id cannot have passed to an unrelated group. The agent itself
 * never signals the group once we are reaped.
 */
static void sweep_group_after_us(void) {
  pid_t us = getpid();
  if (fork() != 0) return;
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
  }
  close_inherited();
  while (getppid() == us) {
    struct timespec ts = {0, 1000000L};
    nanosleep(&ts, NULL);
  }
  kill(0, SIGKILL);
  _exit(0);
}

/* Runs the job as a child and becomes its supervisor (see above). */
static int supervise(char **job) {
  pid_t agent = getppid();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_agent_died;
  sigemptyset(&sa.sa_mask);
  sigaction(AGENT_DIED_SIGNAL, &sa, NULL);
  if (prctl(PR_SET_PDEATHSIG, AGENT_DIED_SIGNAL) != 0 || getppid() != agent) on_agent_died(0);
  close_inherited();
  /* As the job's user: the lease file is readable by all (deadlines only). */
  open_lease();
  target_note(&target, target_arg);
  /* A lapsed lease starts nothing: the client may run the job elsewhere. */
  if (lease_lapsed()) die("the job's lease lapsed before it started", NULL);
  struct sigaction child;
  memset(&child, 0, sizeof child);
  child.sa_handler = on_child;
  sigemptyset(&child.sa_mask);
  sigaction(SIGCHLD, &child, NULL);

  pid_t pid = fork();
  if (pid < 0) die("fork", strerror(errno));
  if (pid == 0) {
    signal(AGENT_DIED_SIGNAL, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, 0);
    if (lease_fd >= 0) close(lease_fd);
    execvp(job[0], job);
    exec_failed(job[0]);
  }
  /* Signals meant for the job reach it through the process group (or the
     pty); the supervisor must outlive it to report how it ended, and notes
     them, to sweep the group once the job has ended. */
  struct sigaction cancel;
  memset(&cancel, 0, sizeof cancel);
  cancel.sa_handler = on_cancel;
  sigemptyset(&cancel.sa_mask);
  sigaction(SIGINT, &cancel, NULL);
  sigaction(SIGTERM, &cancel, NULL);
  sigaction(SIGHUP, &cancel, NULL);
  sigaction(SIGQUIT, &cancel, NULL);
  signal(SIGPIPE, SIG_IGN);
  int status;
  for (;;) {
    pid_t r = waitpid(pid, &status, lease_fd >= 0 ? WNOHANG : 0);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) die("waitpid", strerror(errno));
    uint64_t lapsed = lease_lapsed();
    if (lapsed) kill_group_and_clean(lapsed);
    if (r == 0) {
      struct timespec ts = {0, LEASE_POLL_MS * 1000000L};
      nanosleep(&ts, NULL); /* SIGCHLD cuts it short */
    }
  }
  if (cancelled) sweep_group_after_us();
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    struct rlimit nocore = {0, 0};
    setrlimit(RLIMIT_CORE, &nocore);
    raise(sig);
    return 128 + sig;
  }
  return WEXITSTATUS(status);
}

int main(int argc, char **argv) {
  static const char usage[] =
      "usage: mpmake-exec UMASK FLAGS HEXARGS ROOTS [CREDS ENVSRC] -- ARGV...";
  if (argc < 7) die(usage, NULL);
  /* Ours, from the agent: taken before anything else, never the job's. */
  if (getenv("MPMAKE_EXEC_LEASE")) lease_arg = strdup(getenv("MPMAKE_EXEC_LEASE"));
  if (getenv("MPMAKE_EXEC_TARGET")) target_arg = strdup(getenv("MPMAKE_EXEC_TARGET"));
  unsetenv("MPMAKE_EXEC_LEASE");
  unsetenv("MPMAKE_EXEC_TARGET");
  const char *flags = argv[2];
  int as_user = strchr(flags, 'u') != NULL;
  int dashdash = as_user ? 7 : 5;
  if (argc <= dashdash + 1 || strcmp(argv[dashdash], "--") != 0) die(usage, NULL);
  parse_roots(argv[4]);
  if (as_user) {
    /* Before anything else: nothing runs as root that does not have to. */
    size_t envlen;
    char *block = read_env(argv[6], &envlen);
    drop_privileges(argv[5]);
    set_job_env(block, envlen);
  }
  char **job = argv + dashdash + 1;
  int jobc = argc - dashdash - 1;
  if (strchr(flags, 'p')) {
    close_inherited();
    return probe(job[0]);
  }
  check_cwd_roots();

  char *end;
  long mask = strtol(argv[1], &end, 8);
  if (*end != '\0' || mask < 0 || mask > 0777) die("bad umask", argv[1]);
  umask((mode_t)mask);

  if (strchr(flags, 't')) {
    struct termios tio;
    if (tcgetattr(1, &tio) == 0) {
      tio.c_oflag &= ~(tcflag_t)ONLCR;
      tcsetattr(1, TCSANOW, &tio);
    }
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0 && null != 0) {
      dup2(null, 0);
      close(null);
    }
  }
  if (strchr(flags, 'm') && dup2(1, 2) < 0) die("cannot merge stderr into stdout", strerror(errno));

  if (strcmp(argv[3], "-") != 0) {
    char *list = argv[3];
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
      long i = strtol(tok, &end, 10);
      if (*end != '\0' || i < 0 || i >= jobc || unhex(job[i]) != 0) die("bad hex argument index", tok);
    }
  }

  const char *hexenv = getenv("MPMAKE_EXEC_HEXENV");
  if (hexenv) {
    char *names = strdup(hexenv);
    unsetenv("MPMAKE_EXEC_HEXENV");
    for (char *name = names ? strtok(names, ",") : NULL; name; name = strtok(NULL, ",")) {
      const char *v = getenv(name);
      if (!v) continue;
      char *copy = strdup(v);
      if (!copy || unhex(copy) != 0) die("bad hex environment value", name);
      setenv(name, copy, 1);
      free(copy);
    }
    free(names);
  }

  return supervise(job);
}
