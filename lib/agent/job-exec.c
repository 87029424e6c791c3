/*
 * mpmake-exec: the agent's job launcher. Node cannot set a child's umask,
 * make one pipe serve as both stdout and stderr, turn off a pty's NL->CRLF
 * mapping, or pass bytes that are not UTF-8 in argv and environment. This
 * small program does those, then execs the job: one cheap exec instead of a
 * wrapper shell.
 *
 *   mpmake-exec UMASK FLAGS HEXARGS -- ARGV...
 *
 * UMASK   octal, e.g. 022.
 * FLAGS   letters, or "-": m = stderr goes where stdout goes (dup2(1, 2));
 *         t = stdout is a pty: clear ONLCR, stdin from /dev/null.
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
  if (argc < 6 || strcmp(argv[4], "--") != 0) die("usage: mpmake-exec UMASK FLAGS HEXARGS -- ARGV...", NULL);
  char **job = argv + 5;
  int jobc = argc - 5;

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
