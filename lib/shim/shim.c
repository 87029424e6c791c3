/*
 * mpmake-shim: the SHELL that mpmake gives to GNU make.
 *
 * make runs this program once per recipe line as `sh <.SHELLFLAGS> 'line'`.
 * It decides in a few syscalls whether the line must run here (then it
 * execs the real shell) or on the cluster (then it sends the line to the
 * coordinator over a unix socket and relays output and exit status).
 * The protocol is described in lib/shim/shim-protocol.ts; the reasons for
 * each local rule in DESIGN.md ("Facts about GNU make", "Lines that stay
 * local"). One C99 file, libc only (Linux: /proc, MSG_NOSIGNAL, pipe2).
 *
 * Environment read:
 *   MPMAKE_SOCK              coordinator socket; unset/empty (as on a node,
 *                            where it is never sent) => plain shell
 *   MPMAKE_REAL_SHELL        the shell to exec (default /bin/sh)
 *   MPMAKE_MAKE_NAME         base name of make (default "make")
 *   MPMAKE_JOBSERVER_TEXTUAL=1  jobserver fds leak to every child
 *   MPMAKE_LOCAL             command names that always run locally
 *   MAKEFLAGS                for --jobserver-auth= / --jobserver-fds=
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define PROTO_VERSION 1u
#define MAX_FRAME_BYTES (64u * 1024u * 1024u)
#define INITIAL_BUF (64u * 1024u)

enum {
  FR_REQUEST = 0x01,
  FR_CANCEL = 0x02,
  FR_FRESH = 0x03,
  FR_WROTE = 0x04,
  FR_RESIZE = 0x05,
  FR_STDOUT = 0x11,
  FR_STDERR = 0x12,
  FR_EXIT = 0x13,
  FR_LOCAL = 0x14,
  FR_EXPECT = 0x15
};

#define FLAG_STDOUT_TTY 1u
#define FLAG_STDERR_TTY 2u
#define FLAG_SAME_OUTPUT 4u /* fd 1 and fd 2 are one file: keep their order */

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static const char *env_or(const char *name, const char *dflt) {
  const char *v = getenv(name);
  return (v != NULL && v[0] != '\0') ? v : dflt;
}

/* Writes all of buf to fd, retrying EINTR and waiting out EAGAIN. Used for
 * our own messages, where nothing else needs attention meanwhile. */
static void write_all_simple(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, buf, len);
    if (w > 0) {
      buf += w;
      len -= (size_t)w;
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd p;
      p.fd = fd;
      p.events = POLLOUT;
      p.revents = 0;
      (void)poll(&p, 1, -1);
    } else {
      return;
    }
  }
}

static void say(const char *fmt, ...) {
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof msg) n = (int)sizeof msg - 1;
  write_all_simple(2, msg, (size_t)n);
}

static void put_u32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

static void put_u16(unsigned char *p, uint16_t v) {
  p[0] = (unsigned char)(v >> 8);
  p[1] = (unsigned char)v;
}

static uint32_t get_u32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* Reads a small file (from /proc) into buf, NUL-terminated. */
static ssize_t read_small(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t got = 0;
  while (got + 1 < size) {
    size_t want = size - 1 - got;
    ssize_t r = read(fd, buf + got, want);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
    if ((size_t)r < want) break; /* /proc files come whole in one read */
  }
  close(fd);
  buf[got] = '\0';
  return (ssize_t)got;
}


/* ------------------------------------------------------------------ */
/* Revalidating what another machine wrote (shared file systems)      */
/* ------------------------------------------------------------------ */

#include "revalidate.h"

/* The one warning for files past the bound: which, how late, and why. */
static void warn_stale(const struct expectations *x, uint32_t lag_us) {
  for (size_t i = 0; i < x->n; i++) {
    if (x->e[i].fresh) continue;
    if (x->e[i].missing)
      say("mpmake: %s, written on %s, is still missing here after %u ms (--mp-fs-wait=%u): "
          "this machine keeps a cached \"no such file\" older than the file (NFS: mount with "
          "lookupcache=positive; sshfs: negative_timeout=0), or it was removed since, and "
          "make would judge it by stale metadata; failing this line. Raise "
          "--mp-fs-wait, or mount with shorter caches [MPM_ERR_FS_STALE]\n",
          x->e[i].path, x->from, lag_us / 1000, x->wait_ms);
    else
      say("mpmake: %s, written on %s, still looks different here after %u ms "
          "(--mp-fs-wait=%u): this machine's file system caches are older than the file "
          "(NFS: shorter actimeo, lookupcache=positive; sshfs: dir_cache=no, shorter "
          "attr_timeout), and make would judge it by stale metadata; failing this line. "
          "Raise --mp-fs-wait, or mount with shorter caches [MPM_ERR_FS_STALE]\n",
          x->e[i].path, x->from, lag_us / 1000, x->wait_ms);
  }
}

/* `mpmake-shim --mp-revalidate`: an agent checks a job's inputs. The EXPECT
 * payload comes on stdin, the FRESH payload goes to stdout; exit 0 when all
 * are fresh, 3 when some are not. */
static int revalidate_main(void) {
  size_t cap = 64 * 1024, n = 0;
  unsigned char *buf = malloc(cap);
  if (buf == NULL) return 2;
  for (;;) {
    if (n == cap) {
      if (cap >= MAX_FRAME_BYTES) return 2;
      unsigned char *nb = realloc(buf, cap * 2);
      if (nb == NULL) return 2;
      buf = nb;
      cap *= 2;
    }
    ssize_t r = read(0, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return 2;
    if (r == 0) break;
    n += (size_t)r;
  }
  struct expectations x;
  memset(&x, 0, sizeof x);
  if (parse_expect(buf, n, &x) != 0) {
    say("mpmake-shim --mp-revalidate: malformed input\n");
    return 2;
  }
  uint32_t lag = 0, retries = 0;
  size_t stale = revalidate(&x, &lag, &retries);
  size_t len = 0;
  unsigned char *out = fresh_payload(&x, lag, retries, stale, &len);
  if (out == NULL) return 2;
  write_all_simple(1, (const char *)out, len);
  return stale == 0 ? 0 : 3;
}

/* ------------------------------------------------------------------ */
/* Running the real shell                                              */
/* ------------------------------------------------------------------ */

static void exec_shell(const char *shell, char **argv) {
  argv[0] = (char *)shell;
  if (strchr(shell, '/') != NULL)
    execv(shell, argv);
  else
    execvp(shell, argv); /* SHELL=bash style: make would search PATH too */
  int e = errno;
  say("mpmake: cannot run %s: %s\n", shell, strerror(e));
  _exit(127);
}

/* ------------------------------------------------------------------ */
/* Decisions                                                           */
/* ------------------------------------------------------------------ */

/* make passes .SHELLFLAGS words (-c, -ec, -xc ...) and then the line. */
static int is_c_invocation(int argc, char **argv) {
  if (argc < 3) return 0;
  for (int i = 1; i <= argc - 2; i++) {
    const char *w = argv[i];
    /* long options (--norc, --rcfile) are not -c */
    if (w[0] == '-' && w[1] != '-' && strchr(w + 1, 'c') != NULL) return 1;
  }
  return 0;
}

static int starts_with(const char *s, const char *prefix, size_t n) {
  return n > 0 && strncmp(s, prefix, n) == 0;
}

static int parent_is_make(pid_t ppid, const char *make_name) {
  char path[64], comm[64];
  snprintf(path, sizeof path, "/proc/%ld/comm", (long)ppid);
  if (read_small(path, comm, sizeof comm) <= 0) return 0;
  /* comm is at most 15 characters, then a newline */
  size_t n = strlen(make_name);
  if (n > 15) n = 15;
  return starts_with(comm, "make", 4) || starts_with(comm, "gmake", 5) ||
         starts_with(comm, make_name, n);
}

/* $(shell ...): our stdout is a pipe whose read end make itself holds. When
 * make's own stdout is a pipe (mpmake | tee), make holds the WRITE end of
 * the same pipe, which does not count. make's fds are matched by identity
 * (stat follows /proc/<ppid>/fd/N to the "pipe:[ino]" or named FIFO). */
static int is_shell_function(pid_t ppid) {
  struct stat out;
  if (fstat(1, &out) != 0 || !S_ISFIFO(out.st_mode)) return 0;
  char dirpath[64];
  snprintf(dirpath, sizeof dirpath, "/proc/%ld/fd", (long)ppid);
  DIR *d = opendir(dirpath);
  if (d == NULL) return 0;
  int found = 0;
  struct dirent *de;
  while (!found && (de = readdir(d)) != NULL) {
    if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
    struct stat st;
    if (fstatat(dirfd(d), de->d_name, &st, 0) != 0) continue;
    if (st.st_ino != out.st_ino || st.st_dev != out.st_dev) continue;
    char infopath[320], info[512];
    snprintf(infopath, sizeof infopath, "/proc/%ld/fdinfo/%s", (long)ppid, de->d_name);
    if (read_small(infopath, info, sizeof info) <= 0) continue;
    const char *f = strstr(info, "flags:");
    if (f == NULL) continue;
    unsigned long flags = strtoul(f + 6, NULL, 8);
    if ((flags & O_ACCMODE) == O_RDONLY) found = 1;
  }
  closedir(d);
  return found;
}

/* Finds the last --jobserver-auth= / --jobserver-fds= word of MAKEFLAGS
 * (words split on unescaped blanks; the variable part after "--" is not
 * looked at). Returns 1 and sets *rfd for the "R,W" style with R >= 0,
 * 0 for any other style or none. */
static int jobserver_read_fd(const char *mf, int *rfd) {
  if (mf == NULL) return 0;
  size_t len = strlen(mf);
  char *word = malloc(len + 1);
  if (word == NULL) return 0;
  int have = 0, result = 0;
  const char *p = mf;
  for (;;) {
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '\0') break;
    size_t n = 0;
    while (*p != '\0' && *p != ' ' && *p != '\t') {
      if (*p == '\\' && p[1] != '\0') p++;
      word[n++] = *p++;
    }
    word[n] = '\0';
    if (strcmp(word, "--") == 0) break;
    const char *val = NULL;
    if (strncmp(word, "--jobserver-auth=", 17) == 0)
      val = word + 17;
    else if (strncmp(word, "--jobserver-fds=", 16) == 0)
      val = word + 16;
    if (val == NULL) continue;
    have = 1;
    result = 0;
    char *end = NULL;
    errno = 0;
    long r = strtol(val, &end, 10);
    if (end != val && *end == ',' && errno == 0 && r >= 0 && r <= INT_MAX) {
      char *end2 = NULL;
      (void)strtol(end + 1, &end2, 10);
      if (end2 != end + 1 && *end2 == '\0') {
        *rfd = (int)r;
        result = 1;
      }
    }
  }
  free(word);
  return have && result;
}

static int is_boundary(char c) {
  switch (c) {
    case '\0':
    case ' ':
    case '\t':
    case '\n':
    case '\r':
    case '\v':
    case '\f':
    case '/':
    case '\'':
    case '"':
    case ';':
    case '&':
    case '|':
    case '(':
    case ')':
      return 1;
    default:
      return 0;
  }
}

static int contains_word(const char *line, const char *word) {
  size_t n = strlen(word);
  if (n == 0) return 0;
  for (const char *p = strstr(line, word); p != NULL; p = strstr(p + 1, word)) {
    if ((p == line || is_boundary(p[-1])) && is_boundary(p[n])) return 1;
  }
  return 0;
}

static int is_recursive(const char *line, const char *make_name, const char *textual) {
  /* A nested mpmake is a sub-make too: it must run here, where it finds
     this build's coordinator and pool, whether or not make marked it. */
  if (contains_word(line, "mpmake") || strstr(line, "/mpmake.js") != NULL) return 1;
  int rfd = -1;
  if (!(textual != NULL && strcmp(textual, "1") == 0) &&
      jobserver_read_fd(getenv("MAKEFLAGS"), &rfd)) {
    struct stat st;
    return fcntl(rfd, F_GETFD) != -1 && fstat(rfd, &st) == 0 && S_ISFIFO(st.st_mode);
  }
  return contains_word(line, make_name);
}

/* MPMAKE_LOCAL: the first word is listed and the line is a simple command. */
static int is_local_command(const char *line, const char *list) {
  if (list == NULL || list[0] == '\0') return 0;
  if (strpbrk(line, ";|&`\n") != NULL || strstr(line, "$(") != NULL) return 0;
  const char *w = line;
  while (*w == ' ' || *w == '\t') w++;
  size_t wn = strcspn(w, " \t\r\v\f");
  if (wn == 0) return 0;
  const char *p = list;
  for (;;) {
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '\0') return 0;
    size_t n = strcspn(p, " \t");
    if (n == wn && memcmp(p, w, n) == 0) return 1;
    p += n;
  }
}

/* ------------------------------------------------------------------ */
/* Signals                                                             */
/* ------------------------------------------------------------------ */

static const int trapped[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define NTRAPPED (sizeof trapped / sizeof trapped[0])
static struct sigaction saved_trapped[NTRAPPED];
static int installed_trapped[NTRAPPED];
static struct sigaction saved_pipe;
static sigset_t saved_mask;
static volatile sig_atomic_t got_signal = 0;
static volatile sig_atomic_t got_winch = 0;
static struct sigaction saved_winch;
static int wake_r = -1, wake_w = -1;

static void on_signal(int sig) {
  int e = errno;
  if (got_signal == 0) got_signal = sig;
  if (wake_w >= 0) {
    char c = 1;
    ssize_t r = write(wake_w, &c, 1);
    (void)r;
  }
  errno = e;
}

/* The terminal changed size: the relay loop sends the new one (RESIZE). */
static void on_winch(int sig) {
  (void)sig;
  int e = errno;
  got_winch = 1;
  if (wake_w >= 0) {
    char c = 1;
    ssize_t r = write(wake_w, &c, 1);
    (void)r;
  }
  errno = e;
}

static void install_signals(void) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0) {
    wake_r = fds[0];
    wake_w = fds[1];
  }
  for (size_t i = 0; i < NTRAPPED; i++) {
    struct sigaction old;
    if (sigaction(trapped[i], NULL, &old) != 0) continue;
    saved_trapped[i] = old;
    /* A signal ignored on entry stays ignored, as in a shell. */
    if (old.sa_handler == SIG_IGN) continue;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigfillset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocked write must see EINTR */
    if (sigaction(trapped[i], &sa, NULL) == 0) installed_trapped[i] = 1;
  }
  struct sigaction ign;
  memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  sigaction(SIGPIPE, &ign, &saved_pipe);
  struct sigaction wa;
  memset(&wa, 0, sizeof wa);
  wa.sa_handler = on_winch;
  sigemptyset(&wa.sa_mask);
  wa.sa_flags = SA_RESTART;
  sigaction(SIGWINCH, &wa, &saved_winch);
  /* A trapped signal blocked by an inherited mask would never arrive. */
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGWINCH);
  for (size_t i = 0; i < NTRAPPED; i++)
    if (installed_trapped[i]) sigaddset(&s, trapped[i]);
  sigprocmask(SIG_UNBLOCK, &s, &saved_mask);
}

static void restore_signals(void) {
  sigprocmask(SIG_SETMASK, &saved_mask, NULL);
  for (size_t i = 0; i < NTRAPPED; i++)
    if (installed_trapped[i]) sigaction(trapped[i], &saved_trapped[i], NULL);
  sigaction(SIGPIPE, &saved_pipe, NULL);
  sigaction(SIGWINCH, &saved_winch, NULL);
}

/* Dies by sig as the shell would have. */
static void die_by_signal(int sig) {
  if (sig <= 0 || sig >= NSIG) _exit(sig > 0 ? 128 + (sig & 127) : 1);
  switch (sig) {
    /* these do not terminate by default: a remote could not have died of them */
    case SIGSTOP:
    case SIGTSTP:
    case SIGTTIN:
    case SIGTTOU:
    case SIGCONT:
    case SIGCHLD:
    case SIGURG:
    case SIGWINCH:
      _exit(128 + sig);
    default:
      break;
  }
  /* The remote process may have dumped core; a core of this shim is noise. */
  struct rlimit rl;
  rl.rlim_cur = 0;
  rl.rlim_max = 0;
  setrlimit(RLIMIT_CORE, &rl);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, sig);
  sigprocmask(SIG_UNBLOCK, &s, NULL);
  raise(sig);
  _exit(128 + sig);
}

/* ------------------------------------------------------------------ */
/* Talking to the coordinator                                          */
/* ------------------------------------------------------------------ */

static const char *sock_path;
static int sock_fd = -1;
static int cancel_sent = 0;
static int die_signal = 0;  /* the first of: a trapped signal, SIGPIPE on output */
static int out_broken = 0;  /* EPIPE on fd 1 or 2: output is discarded */
static int out_failed[3];   /* another write error on fd 1 / fd 2 */

static void lost(const char *fmt, ...) {
  if (die_signal != 0) die_by_signal(die_signal); /* Ctrl-C took mpmake down too */
  char reason[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  say("mpmake: lost the coordinator (MPMAKE_SOCK=%s): %s; is mpmake still running?\n", sock_path,
      reason);
  _exit(127);
}

/* Sends all bytes on the socket; returns 0 or an errno value. */
static int sock_send_all(const unsigned char *buf, size_t len) {
  while (len > 0) {
    ssize_t w = send(sock_fd, buf, len, MSG_NOSIGNAL);
    if (w > 0) {
      buf += w;
      len -= (size_t)w;
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else {
      return w < 0 ? errno : EPIPE;
    }
  }
  return 0;
}

static void send_cancel(int sig) {
  if (cancel_sent) return;
  cancel_sent = 1;
  unsigned char f[9];
  put_u32(f, 5);
  f[4] = FR_CANCEL;
  put_u32(f + 5, (uint32_t)sig);
  (void)sock_send_all(f, sizeof f); /* a dead peer shows up as EOF on read */
}

/* Picks up a signal the handler recorded and cancels the job once. */
static void note_signals(void) {
  if (got_signal != 0 && die_signal == 0) die_signal = got_signal;
  if (die_signal != 0) send_cancel(die_signal);
}

/* The terminal whose size the REQUEST carried (-1: none), and that size. */
static int winch_fd = -1;
static uint16_t sent_cols, sent_rows;

/* After a SIGWINCH: sends the terminal's new size, when it changed. */
static void note_winch(void) {
  if (!got_winch) return;
  got_winch = 0;
  struct winsize ws;
  if (winch_fd < 0 || cancel_sent || ioctl(winch_fd, TIOCGWINSZ, &ws) != 0) return;
  if (ws.ws_col == 0 || ws.ws_row == 0) return;
  if (ws.ws_col == sent_cols && ws.ws_row == sent_rows) return;
  sent_cols = ws.ws_col;
  sent_rows = ws.ws_row;
  unsigned char f[9];
  put_u32(f, 5);
  f[4] = FR_RESIZE;
  put_u16(f + 5, sent_cols);
  put_u16(f + 7, sent_rows);
  (void)sock_send_all(f, sizeof f); /* a dead peer shows up as EOF on read */
}

static void drain_wake(void) {
  char b[64];
  if (wake_r < 0) return;
  while (read(wake_r, b, sizeof b) > 0) {
  }
}

/* Writes remote output to fd 1 or 2: complete writes, EINTR and EAGAIN
 * (make may leave O_NONBLOCK on an inherited fd) handled, signals noticed
 * while blocked. */
static void write_output(int fd, const unsigned char *buf, size_t len) {
  if (out_broken || out_failed[fd]) return;
  while (len > 0) {
    ssize_t w = write(fd, buf, len);
    if (w > 0) {
      buf += w;
      len -= (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) {
      note_signals();
      continue;
    }
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd p[2];
      p[0].fd = fd;
      p[0].events = POLLOUT;
      p[0].revents = 0;
      p[1].fd = wake_r;
      p[1].events = POLLIN;
      p[1].revents = 0;
      if (poll(p, wake_r >= 0 ? 2 : 1, -1) < 0 && errno != EINTR) return;
      if (p[1].revents != 0) drain_wake();
      note_signals();
      continue;
    }
    if (w < 0 && errno == EPIPE) {
      /* The reader went away: a local shell would have died of SIGPIPE. */
      out_broken = 1;
      if (die_signal == 0) die_signal = SIGPIPE;
      send_cancel(die_signal);
      return;
    }
    /* ENOSPC, EIO, EBADF ...: say so once, keep the job's output order on
     * the other fd, and do not report success at the end. */
    int e = (w < 0) ? errno : EIO;
    out_failed[fd] = 1;
    if (fd != 2 && !out_failed[2]) say("mpmake: cannot write the job's output to fd %d: %s\n", fd, strerror(e));
    return;
  }
}

static int connect_coordinator(const char *path, int *err, const char **what) {
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  int dirfd_ = -1;
  size_t len = strlen(path);
  if (len < sizeof sa.sun_path) {
    memcpy(sa.sun_path, path, len + 1);
  } else {
    /* Too long for sun_path: reach it through its directory's fd. */
    const char *slash = strrchr(path, '/');
    if (slash == NULL || slash == path) {
      *err = ENAMETOOLONG;
      *what = "socket path";
      return -1;
    }
    char *dir = strndup(path, (size_t)(slash - path));
    if (dir == NULL) {
      *err = ENOMEM;
      *what = "socket path";
      return -1;
    }
    dirfd_ = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int e = errno;
    free(dir);
    if (dirfd_ < 0) {
      *err = e;
      *what = "socket directory";
      return -1;
    }
    int n = snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/%s", dirfd_, slash + 1);
    if (n < 0 || (size_t)n >= sizeof sa.sun_path) {
      close(dirfd_);
      *err = ENAMETOOLONG;
      *what = "socket path";
      return -1;
    }
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = errno;
    *what = "socket";
    if (dirfd_ >= 0) close(dirfd_);
    return -1;
  }
  for (;;) {
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) break;
    if (errno == EINTR && got_signal == 0) continue;
    if (errno == EINTR) die_by_signal(got_signal); /* nothing was started */
    *err = errno;
    *what = "connect";
    close(fd);
    if (dirfd_ >= 0) close(dirfd_);
    return -1;
  }
  if (dirfd_ >= 0) close(dirfd_);
  return fd;
}

/* A line run here without asking (the --mp-local list) still writes its
 * targets: the coordinator learns which (WROTE, answered by nothing), so a
 * node that reads them later in this build revalidates them first. Sent
 * before the line runs. Best effort: a coordinator that cannot be reached
 * changes nothing for the line. `also`: more targets, blank-separated. */
static void tell_written(const char *sock, const char *target, const char *also) {
  if (sock == NULL || sock[0] == '\0' || target == NULL || target[0] == '\0') return;
  char *cwd = getcwd(NULL, 0);
  if (cwd == NULL) return;
  size_t cl = strlen(cwd) + 1, tl = strlen(target) + 1, al = also != NULL ? strlen(also) + 1 : 0;
  size_t len = 1 + cl + tl + al;
  unsigned char *f = len <= MAX_FRAME_BYTES ? malloc(4 + len) : NULL;
  if (f == NULL) {
    free(cwd);
    return;
  }
  put_u32(f, (uint32_t)len);
  f[4] = FR_WROTE;
  memcpy(f + 5, cwd, cl);
  memcpy(f + 5 + cl, target, tl);
  if (al > 0) {
    unsigned char *a = f + 5 + cl + tl;
    memcpy(a, also, al);
    for (size_t i = 0; i < al; i++)
      if (a[i] == ' ' || a[i] == '\t') a[i] = '\0';
  }
  free(cwd);
  int err = 0;
  const char *what = "";
  int fd = connect_coordinator(sock, &err, &what);
  if (fd >= 0) {
    sock_fd = fd;
    (void)sock_send_all(f, 4 + len);
    close(fd);
    sock_fd = -1;
  }
  free(f);
}

static unsigned char *build_request(int argc, char **argv, const char *cwd, size_t *out_len) {
  /* Our pid, for the coordinator alone (never shipped): a line it hands
     back runs as this very process (exec), and it watches for its end. */
  char self[40];
  snprintf(self, sizeof self, "__MPMAKE_SHIM_PID=%ld", (long)getpid());
  size_t envc = 1, total = 5 + 28 + strlen(cwd) + 1 + strlen(self) + 1;
  for (int i = 0; i < argc; i++) total += strlen(argv[i]) + 1;
  for (char **e = environ; e != NULL && *e != NULL; e++, envc++) total += strlen(*e) + 1;
  if (total - 4 > MAX_FRAME_BYTES) return NULL;
  unsigned char *buf = malloc(total);
  if (buf == NULL) return NULL;

  mode_t mask = umask(0);
  umask(mask);
  uint32_t flags = 0;
  int tty[3];
  tty[1] = isatty(1);
  tty[2] = isatty(2);
  tty[0] = (tty[1] || tty[2]) ? 0 : isatty(0);
  if (tty[1]) flags |= FLAG_STDOUT_TTY;
  if (tty[2]) flags |= FLAG_STDERR_TTY;
  struct stat st1, st2;
  if (fstat(1, &st1) == 0 && fstat(2, &st2) == 0 && st1.st_dev == st2.st_dev &&
      st1.st_ino == st2.st_ino)
    flags |= FLAG_SAME_OUTPUT;
  uint16_t cols = 0, rows = 0;
  static const int ttyfds[] = {1, 2, 0};
  for (size_t i = 0; i < 3; i++) {
    struct winsize ws;
    if (tty[ttyfds[i]] && ioctl(ttyfds[i], TIOCGWINSZ, &ws) == 0) {
      cols = ws.ws_col;
      rows = ws.ws_row;
      winch_fd = ttyfds[i];
      sent_cols = cols;
      sent_rows = rows;
      break;
    }
  }

  put_u32(buf, (uint32_t)(total - 4));
  buf[4] = FR_REQUEST;
  unsigned char *h = buf + 5;
  put_u32(h, PROTO_VERSION);
  put_u32(h + 4, (uint32_t)mask);
  put_u32(h + 8, flags);
  put_u16(h + 12, cols);
  put_u16(h + 14, rows);
  put_u32(h + 16, (uint32_t)getppid());
  put_u32(h + 20, (uint32_t)argc);
  put_u32(h + 24, (uint32_t)envc);
  unsigned char *p = h + 28;
  size_t n = strlen(cwd) + 1;
  memcpy(p, cwd, n);
  p += n;
  for (int i = 0; i < argc; i++) {
    n = strlen(argv[i]) + 1;
    memcpy(p, argv[i], n);
    p += n;
  }
  for (size_t i = 0; i + 1 < envc; i++) {
    n = strlen(environ[i]) + 1;
    memcpy(p, environ[i], n);
    p += n;
  }
  n = strlen(self) + 1;
  memcpy(p, self, n);
  p += n;
  *out_len = total;
  return buf;
}

/* Set by an EXPECT frame: what the job's node saw of its targets. */
static struct expectations expected;
static unsigned char *expected_buf;

static void take_expect(const unsigned char *p, size_t n) {
  free(expected_buf);
  free(expected.e);
  memset(&expected, 0, sizeof expected);
  expected_buf = malloc(n + 1);
  if (expected_buf == NULL) lost("out of memory");
  memcpy(expected_buf, p, n);
  if (parse_expect(expected_buf, n, &expected) != 0) lost("malformed EXPECT frame");
}

/* Before make gets a success: wait until the targets look here as the
 * node saw them, tell the coordinator how long that took. True when some
 * are still stale past the bound. */
static int targets_stale(void) {
  if (expected.n == 0) return 0;
  uint32_t lag = 0, retries = 0;
  size_t stale = revalidate(&expected, &lag, &retries);
  size_t len = 0;
  unsigned char *payload = fresh_payload(&expected, lag, retries, stale, &len);
  if (payload != NULL) {
    unsigned char *f = malloc(len + 5);
    if (f != NULL) {
      put_u32(f, (uint32_t)len + 1);
      f[4] = FR_FRESH;
      memcpy(f + 5, payload, len);
      (void)sock_send_all(f, len + 5);
      free(f);
    }
    free(payload);
  }
  if (stale > 0) warn_stale(&expected, lag);
  return stale > 0;
}

static void finish_exit(const unsigned char *p, size_t n) {
  if (n < 8) lost("malformed EXIT frame (%zu bytes)", n);
  int32_t code = (int32_t)get_u32(p);
  int32_t sig = (int32_t)get_u32(p + 4);
  note_signals();
  if (die_signal != 0) die_by_signal(die_signal);
  if (sig > 0) die_by_signal(sig);
  if (code == 0 && targets_stale()) code = 127;
  if (code == 0 && (out_failed[1] || out_failed[2])) code = 1;
  _exit(code & 0xff);
}

static void exec_program(int rearm, char **argv);
static int exec_mode;

static void run_local(const unsigned char *p, size_t n, char **argv) {
  note_signals();
  if (die_signal != 0) die_by_signal(die_signal);
  if (exec_mode && n == 0) {
    close(sock_fd);
    restore_signals();
    exec_program(0, argv);
  }
  if (exec_mode) {
    unsetenv("__MPMAKE_EXEC");
    unsetenv("__MPMAKE_TARGET");
    unsetenv("__MPMAKE_PREREQS");
    unsetenv("__MPMAKE_ALSO");
  }
  char *shell = malloc(n + 1);
  if (shell == NULL) lost("out of memory");
  memcpy(shell, p, n);
  shell[n] = '\0';
  if (shell[0] == '\0') {
    free(shell);
    shell = strdup(env_or("MPMAKE_REAL_SHELL", "/bin/sh"));
    if (shell == NULL) lost("out of memory");
  }
  close(sock_fd);
  restore_signals();
  exec_shell(shell, argv);
}

static void relay(char **argv) {
  size_t cap = INITIAL_BUF, start = 0, end = 0;
  unsigned char *buf = malloc(cap);
  if (buf == NULL) lost("out of memory");
  for (;;) {
    note_signals();
    note_winch();
    /* Handle every complete frame in the buffer. */
    while (end - start >= 4) {
      uint32_t len = get_u32(buf + start);
      if (len < 1 || len > MAX_FRAME_BYTES) lost("bad frame length %lu", (unsigned long)len);
      if (end - start < 4 + (size_t)len) {
        if (4 + (size_t)len > cap) {
          if (start > 0) {
            memmove(buf, buf + start, end - start);
            end -= start;
            start = 0;
          }
          size_t ncap = cap;
          while (ncap < 4 + (size_t)len) ncap *= 2;
          unsigned char *nb = realloc(buf, ncap);
          if (nb == NULL) lost("out of memory for a %lu-byte frame", (unsigned long)len);
          buf = nb;
          cap = ncap;
        }
        break;
      }
      unsigned char type = buf[start + 4];
      const unsigned char *payload = buf + start + 5;
      size_t plen = (size_t)len - 1;
      start += 4 + (size_t)len;
      switch (type) {
        case FR_STDOUT:
          write_output(1, payload, plen);
          break;
        case FR_STDERR:
          write_output(2, payload, plen);
          break;
        case FR_EXIT:
          finish_exit(payload, plen);
          break;
        case FR_LOCAL:
          run_local(payload, plen, argv);
          break;
        case FR_EXPECT:
          take_expect(payload, plen);
          break;
        default:
          break; /* unknown frames are skipped (newer coordinator) */
      }
      note_signals();
    }
    if (start == end) {
      start = end = 0;
    } else if (start > 0 && cap - end < cap / 4) {
      memmove(buf, buf + start, end - start);
      end -= start;
      start = 0;
    }

    struct pollfd p[2];
    p[0].fd = sock_fd;
    p[0].events = POLLIN;
    p[0].revents = 0;
    p[1].fd = wake_r;
    p[1].events = POLLIN;
    p[1].revents = 0;
    if (poll(p, wake_r >= 0 ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      lost("poll: %s", strerror(errno));
    }
    if (wake_r >= 0 && p[1].revents != 0) drain_wake();
    note_winch();
    if (p[0].revents == 0) continue;
    ssize_t r = read(sock_fd, buf + end, cap - end);
    if (r > 0) {
      end += (size_t)r;
    } else if (r == 0) {
      lost("the connection closed before the job's exit status arrived");
    } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
      lost("read: %s", strerror(errno));
    }
  }
}

/* ------------------------------------------------------------------ */

static int exec_mode_main(int argc, char **argv);

/* Sends the job to the coordinator at `sock` and relays it to its end:
 * the last step of shell-line mode and of exec mode alike. */
static int send_and_relay(const char *sock, int argc, char **argv, char *cwd) {
  sock_path = sock;
  install_signals();
  int err = 0;
  const char *what = "";
  sock_fd = connect_coordinator(sock, &err, &what);
  if (sock_fd < 0) {
    note_signals();
    lost("%s: %s", what, strerror(err));
  }
  size_t reqlen = 0;
  unsigned char *req = build_request(argc, argv, cwd, &reqlen);
  if (req == NULL) lost("the job's argv and environment are too large to send");
  if (got_signal != 0) die_by_signal(got_signal); /* nothing was started */
  int e = sock_send_all(req, reqlen);
  if (e != 0) lost("send: %s", strerror(e));
  free(req);
  free(cwd);
  relay(argv);
  return 127;
}

int main(int argc, char **argv) {
  /* Started by mpmake-preload in place of the program make runs. */
  if (getenv("__MPMAKE_EXEC") != NULL) return exec_mode_main(argc, argv);
  const char *shell = env_or("MPMAKE_REAL_SHELL", "/bin/sh");
  const char *sock = getenv("MPMAKE_SOCK");
  if (argc == 2 && strcmp(argv[1], "--mp-revalidate") == 0) return revalidate_main();

  /* 1. not under mpmake, or on a node (MPMAKE_SOCK is never sent there) */
  if (sock == NULL || sock[0] == '\0') exec_shell(shell, argv);
  /* 2. `$(SHELL) script` and friends */
  if (!is_c_invocation(argc, argv)) exec_shell(shell, argv);
  /* 3. a script running `$(SHELL) -c ...`: make is not our parent */
  pid_t ppid = getppid();
  const char *make_name = env_or("MPMAKE_MAKE_NAME", "make");
  if (!parent_is_make(ppid, make_name)) exec_shell(shell, argv);
  /* 4. $(shell ...) */
  if (is_shell_function(ppid)) exec_shell(shell, argv);
  const char *line = argv[argc - 1];
  /* 5. recursive make: the sub-make must join our jobserver pool here */
  if (is_recursive(line, make_name, getenv("MPMAKE_JOBSERVER_TEXTUAL"))) exec_shell(shell, argv);
  /* 6. cheap commands on MPMAKE_LOCAL */
  if (is_local_command(line, getenv("MPMAKE_LOCAL"))) {
    tell_written(sock, getenv("MPMAKE_TARGET"), NULL);
    exec_shell(shell, argv);
  }

  /* 7. ask the coordinator */
  char *cwd = getcwd(NULL, 0);
  if (cwd == NULL) exec_shell(shell, argv); /* cwd removed: no node could enter it */
  return send_and_relay(sock, argc, argv, cwd);
}

/* ------------------------------------------------------------------ */
/* Exec mode: started by mpmake-preload (preload.c) in place of the     */
/* program make runs, with make's argv and make's environment for the   */
/* job plus private variables:                                          */
/*   __MPMAKE_EXEC      the program make asked for (a path)             */
/*   __MPMAKE_TARGET    the target, when the preload found it           */
/*   __MPMAKE_PREREQS   its prerequisites ($^ $|), with the target        */
/*   __MPMAKE_ALSO      the other targets its recipe makes (grouped or   */
/*                      multi-target pattern rules), with the target    */
/*   __MPMAKE_SOCK, __MPMAKE_LOCAL, __MPMAKE_MAKE_NAME, __MPMAKE_TEXTUAL */
/*   __MPMAKE_SHIM, __MPMAKE_PRELOAD  (and __MPMAKE_LD_PRELOAD)         */
/* Nothing runs with them: they are taken out first (EXEC and TARGET    */
/* travel to the coordinator with the request, which drops them).      */
/* The job is "exec PROGRAM with ARGV": a shell line (make's SHELL with */
/* its flags) or a line make execs itself (its fast path) alike, so     */
/* exit statuses, signal deaths and errors are those of that program.   */
/* ------------------------------------------------------------------ */

static char *xm_prog;
static char **xm_priv; /* private variables given back to a sub-make */

static char *dup_env(const char *name) {
  const char *v = getenv(name);
  return v != NULL ? strdup(v) : NULL;
}

/* Runs the program here, as make would have; with rearm, a sub-make in it
 * gets the preload again (and so sends its own lines to the coordinator). */
static int is_shell_name(const char *path);
static int is_make_name(const char *path);

static void exec_program(int rearm, char **argv) {
  unsetenv("__MPMAKE_EXEC");
  unsetenv("__MPMAKE_TARGET");
  unsetenv("__MPMAKE_PREREQS");
  unsetenv("__MPMAKE_ALSO");
  /* Only a shell (that may start make) or make itself gets the preload
     back; another program (a nested mpmake) finds the build by itself. */
  if (!is_shell_name(xm_prog) && !is_make_name(xm_prog)) rearm = 0;
  const char *preload = NULL;
  for (char **p = xm_priv; rearm && p != NULL && *p != NULL; p++)
    if (strncmp(*p, "__MPMAKE_PRELOAD=", 17) == 0) preload = *p + 17;
  if (preload != NULL) {
    const char *user = getenv("LD_PRELOAD");
    if (user != NULL && user[0] != '\0') {
      size_t n = strlen(preload) + strlen(user) + 2;
      char *both = malloc(n);
      if (both != NULL) {
        snprintf(both, n, "%s %s", preload, user);
        setenv("__MPMAKE_LD_PRELOAD", user, 1);
        setenv("LD_PRELOAD", both, 1);
      }
    } else {
      if (user != NULL) setenv("__MPMAKE_LD_PRELOAD", user, 1);
      setenv("LD_PRELOAD", preload, 1);
    }
    for (char **p = xm_priv; *p != NULL; p++) putenv(*p);
  }
  /* execvp with a path runs it, and a file without #! through /bin/sh, as
     make's exec (and its posix_spawn fallback) would. */
  execvp(xm_prog, argv);
  int e = errno;
  say("mpmake: cannot run %s: %s\n", xm_prog, strerror(e));
  _exit(e == ENOENT ? 127 : 126);
}

static int is_shell_name(const char *path) {
  static const char *const shells[] = {"sh",  "bash", "dash", "ksh",  "mksh",    "zsh",
                                       "ash", "posh", "yash", "lksh", "busybox", NULL};
  const char *b = strrchr(path, '/');
  b = b != NULL ? b + 1 : path;
  for (size_t i = 0; shells[i] != NULL; i++)
    if (strcmp(b, shells[i]) == 0) return 1;
  return 0;
}

static const char *xm_make_name = "make";

static int is_make_name(const char *path) {
  const char *b = strrchr(path, '/');
  b = b != NULL ? b + 1 : path;
  return strcmp(b, "make") == 0 || strcmp(b, "gmake") == 0 || strcmp(b, xm_make_name) == 0;
}

static int exec_mode_main(int argc, char **argv) {
  exec_mode = 1;
  xm_prog = dup_env("__MPMAKE_EXEC");
  const char *sock = dup_env("__MPMAKE_SOCK");
  const char *local = dup_env("__MPMAKE_LOCAL");
  const char *textual = dup_env("__MPMAKE_TEXTUAL");
  const char *make_name = dup_env("__MPMAKE_MAKE_NAME");
  if (make_name == NULL) make_name = "make";
  xm_make_name = make_name;
  size_t n = 0;
  for (char **e = environ; *e != NULL; e++)
    if (strncmp(*e, "__MPMAKE_", 9) == 0) n++;
  xm_priv = calloc(n + 1, sizeof *xm_priv);
  if (xm_prog == NULL || xm_priv == NULL) {
    say("mpmake: out of memory\n");
    _exit(127);
  }
  size_t k = 0;
  for (char **e = environ; *e != NULL && k < n; e++) {
    if (strncmp(*e, "__MPMAKE_", 9) != 0) continue;
    if (strncmp(*e, "__MPMAKE_EXEC=", 14) == 0 || strncmp(*e, "__MPMAKE_TARGET=", 16) == 0 ||
        strncmp(*e, "__MPMAKE_PREREQS=", 17) == 0 || strncmp(*e, "__MPMAKE_ALSO=", 14) == 0 ||
        strncmp(*e, "__MPMAKE_LD_PRELOAD=", 20) == 0)
      continue;
    xm_priv[k++] = strdup(*e);
  }
  /* Out of the job's environment (kept: EXEC, TARGET, PREREQS and ALSO, for the request). */
  for (size_t i = 0; i < k; i++) {
    char *eq = xm_priv[i] != NULL ? strchr(xm_priv[i], '=') : NULL;
    if (eq == NULL) continue;
    *eq = '\0';
    unsetenv(xm_priv[i]);
    *eq = '=';
  }
  unsetenv("__MPMAKE_LD_PRELOAD");

  if (sock == NULL || sock[0] == '\0') exec_program(0, argv);
  /* $(shell ...) */
  if (is_shell_function(getppid())) exec_program(0, argv);
  /* The line's text: a shell's -c argument, else the command itself. */
  const char *line = NULL;
  char *joined = NULL;
  if (is_shell_name(argv[0]) && is_c_invocation(argc, argv)) {
    line = argv[argc - 1];
  } else {
    size_t len = 1;
    for (int i = 0; i < argc; i++) len += strlen(argv[i]) + 1;
    joined = malloc(len);
    if (joined == NULL) exec_program(0, argv);
    joined[0] = '\0';
    for (int i = 0; i < argc; i++) {
      if (i > 0) strcat(joined, " ");
      strcat(joined, argv[i]);
    }
    line = joined;
  }
  /* A sub-make joins our pool here, and gets the preload back. */
  if (is_recursive(line, make_name, textual)) exec_program(1, argv);
  if (is_local_command(line, local)) {
    tell_written(sock, getenv("__MPMAKE_TARGET"), getenv("__MPMAKE_ALSO"));
    exec_program(0, argv);
  }
  free(joined);

  char *cwd = getcwd(NULL, 0);
  if (cwd == NULL) exec_program(0, argv);
  return send_and_relay(sock, argc, argv, cwd);
}
