/*
 * mpmake-exec: the agent's job launcher. Node cannot set a child's umask,
 * make one pipe serve as both stdout and stderr, turn off a pty's NL->CRLF
 * mapping, or pass bytes that are not UTF-8 in argv and environment. This
 * small program does those, then execs the job: one cheap exec instead of a
 * wrapper shell.
 *
 *   mpmake-exec UMASK FLAGS HEXARGS -- ARGV...
 *   mpmake-exec UMASK FLAGS HEXARGS UID:GID:GROUPS NAME=VALUE... -- ARGV...  (flag u)
 *
 * UMASK   octal, e.g. 022.
 * FLAGS   letters, or "-": m = stderr goes where stdout goes (dup2(1, 2));
 *         t = stdout is a pty: clear ONLCR, stdin from /dev/null;
 *         u = started as root: become UID, GID with the supplementary
 *         GROUPS (comma-separated, may be empty) before anything else,
 *         enter the working directory again as that user, and give the job
 *         exactly the NAME=VALUE environment from the arguments. The agent
 *         execs us with an empty environment then, so the dynamic loader
 *         has nothing of the client's (LD_PRELOAD…) to act on as root.
 * HEXARGS comma-separated indices into ARGV whose text is hex-encoded
 *         bytes, or "-".
 * MPMAKE_EXEC_HEXENV: comma-separated names of environment variables whose
 *         values are hex-encoded bytes; decoded, and the list removed.
 *
 * It stays behind as the job's supervisor: it forks the job and waits for
 * it, and if the agent dies (even by SIGKILL, which the agent cannot catch)
 * the kernel tells it (PR_SET_PDEATHSIG) and it kills the job's whole
 * process group, so no job outlives its agent. It ends as the job ended:
 * the same exit status, or death by the same signal.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
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

static void on_agent_died(int sig) {
  (void)sig;
  kill(0, SIGKILL); /* our process group: the job, its children, and us */
  _exit(137);
}

#define MAX_GROUPS 1024

/* Parses a decimal id; returns 0 on success. */
static int parse_id(const char *s, char **end, unsigned long *out) {
  if (*s < '0' || *s > '9') return -1;
  errno = 0;
  *out = strtoul(s, end, 10);
  return errno != 0 || *out > 0xfffffffeUL ? -1 : 0;
}

/*
 * Becomes the user in CREDS ("UID:GID:G1,G2,..."): groups, then gid, then
 * uid, checks that root cannot be regained, and enters the working
 * directory again as that user, so a directory the user may not enter is
 * refused as it would be at a login.
 */
static void drop_privileges(const char *creds) {
  unsigned long uid, gid, g;
  static gid_t groups[MAX_GROUPS];
  size_t ngroups = 0;
  char *end;
  const char *p = creds;
  if (parse_id(p, &end, &uid) != 0 || *end != ':') die("bad credentials", creds);
  p = end + 1;
  if (parse_id(p, &end, &gid) != 0 || *end != ':') die("bad credentials", creds);
  p = end + 1;
  while (*p) {
    if (ngroups == MAX_GROUPS || parse_id(p, &end, &g) != 0) die("bad credentials", creds);
    groups[ngroups++] = (gid_t)g;
    if (*end == ',') end++;
    else if (*end != '\0') die("bad credentials", creds);
    p = end;
  }
  static char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) die("getcwd", strerror(errno));
  if (setgroups(ngroups, groups) != 0) die("setgroups", strerror(errno));
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

/* Replaces the environment by the NAME=VALUE arguments; keeps the TERM and
   PWD node-pty set for a tty job (the only variables we were started with). */
static void set_job_env(char **entries, int n) {
  char *term = getenv("TERM") ? strdup(getenv("TERM")) : NULL;
  char *pwd = getenv("PWD") ? strdup(getenv("PWD")) : NULL;
  if (clearenv() != 0) die("clearenv", NULL);
  for (int i = 0; i < n; i++) {
    if (!strchr(entries[i], '=') || entries[i][0] == '=') die("bad environment argument", entries[i]);
    if (putenv(entries[i]) != 0) die("putenv", strerror(errno));
  }
  if (term && setenv("TERM", term, 1) != 0) die("setenv", strerror(errno));
  if (pwd && setenv("PWD", pwd, 1) != 0) die("setenv", strerror(errno));
  free(term);
  free(pwd);
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

  pid_t pid = fork();
  if (pid < 0) die("fork", strerror(errno));
  if (pid == 0) {
    signal(AGENT_DIED_SIGNAL, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, 0);
    execvp(job[0], job);
    die(job[0], strerror(errno));
  }
  /* Signals meant for the job reach it through the process group (or the
     pty); the supervisor must outlive it to report how it ended. */
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) die("waitpid", strerror(errno));
  }
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
  if (argc < 6) die("usage: mpmake-exec UMASK FLAGS HEXARGS [CREDS ENV...] -- ARGV...", NULL);
  int dashdash = 4;
  if (strchr(argv[2], 'u')) {
    /* Before anything else: nothing runs as root that does not have to. */
    dashdash = 5;
    while (dashdash < argc && strcmp(argv[dashdash], "--") != 0) dashdash++;
    if (dashdash >= argc - 1) die("usage: mpmake-exec UMASK FLAGS HEXARGS CREDS ENV... -- ARGV...", NULL);
    drop_privileges(argv[4]);
    set_job_env(argv + 5, dashdash - 5);
  } else if (strcmp(argv[4], "--") != 0) {
    die("usage: mpmake-exec UMASK FLAGS HEXARGS -- ARGV...", NULL);
  }
  char **job = argv + dashdash + 1;
  int jobc = argc - dashdash - 1;

  char *end;
  long mask = strtol(argv[1], &end, 8);
  if (*end != '\0' || mask < 0 || mask > 0777) die("bad umask", argv[1]);
  umask((mode_t)mask);

  const char *flags = argv[2];
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
