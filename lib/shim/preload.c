/*
 * mpmake-preload: how GNU make reaches the shim without mpmake showing in
 * anything a makefile or a recipe can read.
 *
 * mpmake starts make with LD_PRELOAD naming this library and a few private
 * variables (__MPMAKE_*). Before make's main() runs, the constructor takes
 * those variables out of the environment (in place, so make's envp sees the
 * change), puts the user's own LD_PRELOAD back (or removes it), and keeps
 * them here. make then reads its makefiles untouched: no command-line
 * variable, no SHELL override, MAKEFLAGS/MAKEOVERRIDES/MAKEFILE_LIST and the
 * environment as make alone would have them.
 *
 * Role 1, in make: every program make starts (a recipe line through its
 * SHELL, a line make execs itself on its fast path, $(shell ...)) is started
 * as the shim instead, with make's own argv and make's own environment for
 * the job, plus the private variables, __MPMAKE_EXEC (the program make
 * asked for), __MPMAKE_TARGET, __MPMAKE_PREREQS and __MPMAKE_ALSO (the
 * target, its prerequisites and the other targets the same recipe makes --
 * a grouped rule's `a b &:`, a pattern rule's `%.x %.y:` -- when they can be
 * found; see target_of). The shim takes them out again before anything runs. A program
 * that make could not start itself (missing, not executable) is left to the
 * real call, so the error is make's own. When make re-executes itself
 * (after remaking a makefile) it keeps this library.
 *
 * With -jN on its command line make is the top of its own jobserver group,
 * as without mpmake (so the command line's -j wins over a makefile's
 * `MAKEFLAGS += -jM`, and MAKEFLAGS reads as make's), but the pool it
 * makes is mpmake's (__MPMAKE_POOL, the top make only): see "make's
 * jobserver is mpmake's pool" below.
 *
 * Role 2, in any other process that got it (the shell of a recursive line,
 * which the shim runs with it): the private variables are hidden the same
 * way, and given back only to a program named like make (make, gmake,
 * __MPMAKE_MAKE_NAME), so a sub-make, even a literal `make` in a recipe,
 * sends its lines to the same coordinator; nothing else sees them.
 *
 * Linux/glibc, C99 + GNU extensions, libc and libdl only.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;
extern void *__libc_stack_end;

#define PRIV "__MPMAKE_"
#define PRIV_LEN 9

static char **priv;       /* saved "__MPMAKE_X=v" strings, NULL-terminated */
static const char *shim;  /* __MPMAKE_SHIM */
static const char *self;  /* __MPMAKE_PRELOAD: this library's path */
static const char *make_name; /* __MPMAKE_MAKE_NAME */
static int armed;         /* private variables were found */
static int in_make;       /* role 1 */
static pid_t make_pid;
static const char *pool_path; /* __MPMAKE_POOL: mpmake's pool, for make's jobserver_setup */

typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                        const posix_spawnattr_t *, char *const[], char *const[]);
typedef int (*execve_fn)(const char *, char *const[], char *const[]);

static spawn_fn real_spawn, real_spawnp;
static execve_fn real_execve, real_execvpe;

static const char *priv_value(const char *name) {
  size_t n = strlen(name);
  for (char **p = priv; p != NULL && *p != NULL; p++)
    if (strncmp(*p, name, n) == 0 && (*p)[n] == '=') return *p + n + 1;
  return NULL;
}

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s != NULL ? s + 1 : path;
}

static int is_make_name(const char *path) {
  const char *b = base_name(path);
  return strcmp(b, "make") == 0 || strcmp(b, "gmake") == 0 ||
         (make_name != NULL && make_name[0] != '\0' && strcmp(b, make_name) == 0);
}

/* Whether this process is GNU make: it exports make's own functions (make
 * is linked with --export-dynamic for `load`), or its file is named so. */
static int process_is_make(void) {
  if (dlsym(RTLD_DEFAULT, "child_execute_job") != NULL &&
      dlsym(RTLD_DEFAULT, "construct_command_argv") != NULL)
    return 1;
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return 0;
  exe[n] = '\0';
  return is_make_name(exe);
}

/* ------------------------------------------------------------------ */
/* make's jobserver is mpmake's pool                                   */
/* ------------------------------------------------------------------ */

/*
 * A top make (-jN on its command line, or in MAKEFLAGS without a pool)
 * makes its pool in jobserver_setup (posixos.c, make 4.3 and 4.4 alike):
 * pipe(), or mkfifo($TMPDIR/GMfifoPID) and two open()s in make 4.4's fifo
 * style; then N-1 one-byte writes of its tokens. At its end (and before it
 * re-executes itself) jobserver_acquire_all reads every token back with
 * blocking reads, the write end closed, until EOF, and make checks it got
 * N-1. Here, for calls made from those two functions of make (found by the
 * return address; make exports its functions for `load`):
 * - pipe() opens mpmake's FIFO twice instead (a read end and a write end,
 *   at the fds pipe() would have given);
 * - mkfifo(PATH) makes PATH a symlink to mpmake's FIFO (make opens it, shows
 *   `fifo:PATH` and removes it at its end, as its own);
 * - make's token writes are counted, not written: mpmake's pool holds the
 *   tokens for the cluster's slots (at most N);
 * - the final reads hand back as many tokens as make wrote, then EOF (a
 *   blocking read of mpmake's FIFO, which mpmake holds open, would never end).
 * Anything else, and a make whose functions cannot be found, is left alone:
 * make then keeps a pool of its own.
 */
typedef int (*pipe_fn)(int[2]);
typedef int (*mkfifo_fn)(const char *, mode_t);
typedef ssize_t (*rw_fn)(int, void *, size_t);
typedef ssize_t (*write_fn)(int, const void *, size_t);

static pipe_fn real_pipe;
static mkfifo_fn real_mkfifo;
static rw_fn real_read;
static write_fn real_write;
static uintptr_t setup_lo, setup_hi, collect_lo, collect_hi;
static int pool_taken;       /* make's jobserver_setup got mpmake's pool */
static unsigned long pool_owed; /* tokens make wrote there (not written) */

/* The address range of one of make's exported functions; 0 if unknown. */
static int fn_range(const char *name, uintptr_t *lo, uintptr_t *hi) {
  void *f = dlsym(RTLD_DEFAULT, name);
  Dl_info info;
  const ElfW(Sym) *sym = NULL;
  if (f == NULL || dladdr1(f, &info, (void **)&sym, RTLD_DL_SYMENT) == 0 || sym == NULL ||
      sym->st_size == 0)
    return 0;
  *lo = (uintptr_t)f;
  *hi = *lo + sym->st_size;
  return 1;
}

static void find_pool(void) {
  const char *p = priv_value("__MPMAKE_POOL");
  if (p == NULL || p[0] == '\0') return;
  if (!fn_range("jobserver_setup", &setup_lo, &setup_hi) ||
      !fn_range("jobserver_acquire_all", &collect_lo, &collect_hi))
    return;
  pool_path = p;
}

#define CALLED_FROM(lo, hi) \
  ((uintptr_t)__builtin_return_address(0) >= (lo) && (uintptr_t)__builtin_return_address(0) < (hi))

int pipe(int fds[2]) {
  if (real_pipe == NULL) real_pipe = (pipe_fn)dlsym(RTLD_NEXT, "pipe");
  if (pool_path != NULL && !pool_taken && CALLED_FROM(setup_lo, setup_hi)) {
    int r = open(pool_path, O_RDONLY | O_NONBLOCK);
    if (r >= 0) {
      int w = open(pool_path, O_WRONLY);
      if (w >= 0) {
        int fl = fcntl(r, F_GETFL);
        if (fl != -1) fcntl(r, F_SETFL, fl & ~O_NONBLOCK); /* as pipe() gives it */
        fds[0] = r;
        fds[1] = w;
        pool_taken = 1;
        return 0;
      }
      close(r);
    }
  }
  if (real_pipe == NULL) {
    errno = ENOSYS;
    return -1;
  }
  return real_pipe(fds);
}

int mkfifo(const char *path, mode_t mode) {
  if (real_mkfifo == NULL) real_mkfifo = (mkfifo_fn)dlsym(RTLD_NEXT, "mkfifo");
  if (pool_path != NULL && !pool_taken && CALLED_FROM(setup_lo, setup_hi)) {
    /* symlink's errors are mkfifo's for an existing name or a bad directory. */
    if (symlink(pool_path, path) != 0) return -1;
    pool_taken = 1;
    return 0;
  }
  if (real_mkfifo == NULL) {
    errno = ENOSYS;
    return -1;
  }
  return real_mkfifo(path, mode);
}

ssize_t write(int fd, const void *buf, size_t n) {
  if (real_write == NULL) real_write = (write_fn)dlsym(RTLD_NEXT, "write");
  if (pool_taken && CALLED_FROM(setup_lo, setup_hi)) {
    pool_owed += n;
    return (ssize_t)n;
  }
  if (real_write == NULL) {
    errno = ENOSYS;
    return -1;
  }
  return real_write(fd, buf, n);
}

ssize_t read(int fd, void *buf, size_t n) {
  if (real_read == NULL) real_read = (rw_fn)dlsym(RTLD_NEXT, "read");
  if (pool_taken && CALLED_FROM(collect_lo, collect_hi)) {
    if (n == 0 || pool_owed == 0) return 0;
    ((char *)buf)[0] = '+';
    pool_owed--;
    return 1;
  }
  if (real_read == NULL) {
    errno = ENOSYS;
    return -1;
  }
  return real_read(fd, buf, n);
}

__attribute__((constructor)) static void mpmake_preload_init(void) {
  real_spawn = (spawn_fn)dlsym(RTLD_NEXT, "posix_spawn");
  real_spawnp = (spawn_fn)dlsym(RTLD_NEXT, "posix_spawnp");
  real_execve = (execve_fn)dlsym(RTLD_NEXT, "execve");
  real_execvpe = (execve_fn)dlsym(RTLD_NEXT, "execvpe");
  size_t n = 0;
  for (char **e = environ; e != NULL && *e != NULL; e++)
    if (strncmp(*e, PRIV, PRIV_LEN) == 0) n++;
  if (n == 0) return;
  priv = calloc(n + 1, sizeof *priv);
  if (priv == NULL) return;
  size_t k = 0;
  for (char **e = environ; *e != NULL && k < n; e++)
    if (strncmp(*e, PRIV, PRIV_LEN) == 0) priv[k++] = strdup(*e);
  /* Out of the environment, in place (unsetenv shifts the array that
     main's envp also points to). */
  for (size_t i = 0; i < k; i++) {
    if (priv[i] == NULL) continue;
    char *eq = strchr(priv[i], '=');
    if (eq == NULL) continue;
    *eq = '\0';
    unsetenv(priv[i]);
    *eq = '=';
  }
  const char *user = priv_value("__MPMAKE_LD_PRELOAD");
  if (user != NULL)
    setenv("LD_PRELOAD", user, 1); /* replaces the existing entry in place */
  else
    unsetenv("LD_PRELOAD");
  shim = priv_value("__MPMAKE_SHIM");
  self = priv_value("__MPMAKE_PRELOAD");
  make_name = priv_value("__MPMAKE_MAKE_NAME");
  armed = shim != NULL && self != NULL;
  in_make = armed && process_is_make();
  make_pid = getpid();
  if (in_make) find_pool();
}

/* ------------------------------------------------------------------ */
/* The target of the job make is starting                              */
/* ------------------------------------------------------------------ */

/*
 * make passes child->environment as posix_spawn's envp; `struct child`
 * starts with `char *cmd_name; char **environment;` and holds
 * `struct file *file` (whose first member is its name) at offset 40, in
 * make 4.3 and 4.4 alike (job.h, filedef.h). The pointer to the child is
 * live in make's frames while it starts the program, so it is among the
 * words just above ours on the stack (our prologue saves the caller's
 * callee-saved registers there). A word is taken for the child only if it
 * points into the heap and the word at +8 is envp itself; every pointer
 * followed is bounded by the heap. Any doubt: no target.
 */
#define CHILD_ENV_OFFSET 8
#define CHILD_FILE_OFFSET 40
/* struct file: name, hname, vpath, then `struct dep *deps` (all
 * prerequisites, order-only too), cmds, stem, then `struct dep *also_make`
 * (the targets made by the same recipe run: a grouped rule's members, the
 * file itself among them; a multi-target pattern rule's others), in make
 * 4.3 and 4.4.1 alike; struct dep: next, name, file. */
#define FILE_DEPS_OFFSET 24
#define FILE_ALSO_MAKE_OFFSET 48
#define DEP_NAME_OFFSET 8
#define DEP_FILE_OFFSET 16
#define MAX_PREREQS_BYTES 65536
#define SCAN_WORDS 1024

static uintptr_t heap_lo;
static int layout_known = -1;

static int known_layout(void) {
  if (layout_known >= 0) return layout_known;
  layout_known = 0;
  const char **v = (const char **)dlsym(RTLD_DEFAULT, "version_string");
  if (v != NULL && *v != NULL && (strncmp(*v, "4.3", 3) == 0 || strncmp(*v, "4.4", 3) == 0))
    layout_known = 1;
  FILE *m = fopen("/proc/self/maps", "re");
  if (m == NULL) return layout_known = 0;
  char line[512];
  while (fgets(line, sizeof line, m) != NULL) {
    if (strstr(line, "[heap]") != NULL) {
      heap_lo = (uintptr_t)strtoull(line, NULL, 16);
      break;
    }
  }
  fclose(m);
  if (heap_lo == 0) layout_known = 0;
  return layout_known;
}

static int in_heap(uintptr_t p, size_t len, uintptr_t hi) {
  return p >= heap_lo && p + len <= hi && p + len > p;
}

/* A NUL-terminated string inside the heap, or NULL. */
static const char *heap_string(uintptr_t p, uintptr_t hi) {
  if (!in_heap(p, 1, hi)) return NULL;
  size_t len = 0;
  while (p + len < hi && len < 4096 && ((const char *)p)[len] != '\0') len++;
  if (p + len >= hi || len == 0 || len >= 4096) return NULL;
  return (const char *)p;
}

/* The names in one of the file's dep lists (at `offset` in struct file),
 * as make's dep_name, separated by spaces, in buf; empty when they cannot
 * be read. */
static char prereqs_buf[MAX_PREREQS_BYTES];
static char also_buf[MAX_PREREQS_BYTES];

static const char *dep_names(uintptr_t file, size_t offset, uintptr_t hi, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  if (!in_heap(file, offset + 8, hi)) return buf;
  uintptr_t d = *(uintptr_t *)(file + offset);
  for (int n = 0; d != 0 && n < 4096; n++) {
    if ((d & 7) != 0 || !in_heap(d, DEP_FILE_OFFSET + 8, hi)) return buf;
    const char *name = heap_string(*(uintptr_t *)(d + DEP_NAME_OFFSET), hi);
    if (name == NULL) {
      uintptr_t f = *(uintptr_t *)(d + DEP_FILE_OFFSET);
      if ((f & 7) == 0 && in_heap(f, 8, hi)) name = heap_string(*(uintptr_t *)f, hi);
    }
    if (name != NULL) {
      size_t len = strlen(name);
      if (used + len + 2 >= size) break;
      if (used > 0) buf[used++] = ' ';
      memcpy(buf + used, name, len + 1);
      used += len;
    }
    d = *(uintptr_t *)d;
  }
  return buf;
}

/* 1: a job child was found (*target set, or NULL when its name could not be
 * read); 2: a child on the stack ($(shell ...)); 0: not found. */
__attribute__((noinline)) static int target_of(char *const envp[], const char **target,
                                               const char **prereqs, const char **also) {
  *target = NULL;
  *prereqs = NULL;
  *also = NULL;
  if (!known_layout()) return 0;
  uintptr_t hi = (uintptr_t)sbrk(0);
  uintptr_t *sp = (uintptr_t *)__builtin_frame_address(0);
  uintptr_t *top = (uintptr_t *)__libc_stack_end;
  size_t words = SCAN_WORDS;
  if (top > sp && (size_t)(top - sp) < words) words = (size_t)(top - sp);
  int on_stack = 0;
  for (size_t i = 0; i < words; i++) {
    uintptr_t w = sp[i];
    if (w == 0 || (w & 7) != 0) continue;
    if (in_heap(w, CHILD_FILE_OFFSET + 8, hi)) {
      if (*(char *const **)(w + CHILD_ENV_OFFSET) != envp) continue;
      uintptr_t file = *(uintptr_t *)(w + CHILD_FILE_OFFSET);
      if ((file & 7) != 0 || !in_heap(file, 8, hi)) return 1;
      *target = heap_string(*(uintptr_t *)file, hi);
      if (*target != NULL) {
        *prereqs = dep_names(file, FILE_DEPS_OFFSET, hi, prereqs_buf, sizeof prereqs_buf);
        *also = dep_names(file, FILE_ALSO_MAKE_OFFSET, hi, also_buf, sizeof also_buf);
      }
      return 1;
    }
    if (w > (uintptr_t)sp && w < (uintptr_t)top - 16 &&
        *(char *const **)(w + CHILD_ENV_OFFSET) == envp)
      on_stack = 1;
  }
  return on_stack ? 2 : 0;
}

/* ------------------------------------------------------------------ */
/* Environments                                                        */
/* ------------------------------------------------------------------ */

static size_t count(char *const v[]) {
  size_t n = 0;
  while (v != NULL && v[n] != NULL) n++;
  return n;
}

static char *concat(const char *a, const char *b, const char *c) {
  size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
  char *s = malloc(la + lb + lc + 1);
  if (s == NULL) return NULL;
  memcpy(s, a, la);
  memcpy(s + la, b, lb);
  memcpy(s + la + lb, c, lc + 1);
  return s;
}

/* envp plus the private variables and `extra` ("NAME=value" strings).
 * With `preload`, LD_PRELOAD names this library first (the environment's
 * own LD_PRELOAD, if any, after it and in __MPMAKE_LD_PRELOAD). The result
 * and the strings made here are freed by free_env. */
static char **armed_env(char *const envp[], char *const extra[], int preload, char ***made) {
  size_t n = count(envp), np = count(priv), ne = count(extra);
  char **out = calloc(n + np + ne + 3, sizeof *out);
  char **own = calloc(3, sizeof *own);
  if (out == NULL || own == NULL) {
    free(out);
    free(own);
    return NULL;
  }
  size_t k = 0, m = 0;
  const char *user = NULL;
  for (size_t i = 0; i < n; i++) {
    if (strncmp(envp[i], PRIV, PRIV_LEN) == 0) continue;
    if (strncmp(envp[i], "LD_PRELOAD=", 11) == 0) {
      user = envp[i] + 11;
      if (preload) continue;
    }
    out[k++] = envp[i];
  }
  for (size_t i = 0; i < np; i++) {
    if (strncmp(priv[i], "__MPMAKE_LD_PRELOAD=", 20) == 0) continue;
    if (strncmp(priv[i], "__MPMAKE_EXEC=", 14) == 0) continue;
    if (strncmp(priv[i], "__MPMAKE_TARGET=", 16) == 0) continue;
    if (strncmp(priv[i], "__MPMAKE_PREREQS=", 17) == 0) continue;
    if (strncmp(priv[i], "__MPMAKE_ALSO=", 14) == 0) continue;
    /* The pool is the top make's own: not for a job, nor a sub-make. */
    if (!preload && strncmp(priv[i], "__MPMAKE_POOL=", 14) == 0) continue;
    out[k++] = priv[i];
  }
  for (size_t i = 0; i < ne; i++) out[k++] = extra[i];
  if (preload) {
    own[m] = (user != NULL && user[0] != '\0') ? concat("LD_PRELOAD=", self, " ") : NULL;
    if (own[m] != NULL) {
      char *full = concat(own[m], user, "");
      free(own[m]);
      own[m] = full;
    } else {
      own[m] = concat("LD_PRELOAD=", self, "");
    }
    if (own[m] != NULL) out[k++] = own[m++];
    if (user != NULL) {
      own[m] = concat("__MPMAKE_LD_PRELOAD=", user, "");
      if (own[m] != NULL) out[k++] = own[m++];
    }
  }
  out[k] = NULL;
  *made = own;
  return out;
}

static void free_env(char **env, char **made) {
  for (char **p = made; p != NULL && *p != NULL; p++) free(*p);
  free(made);
  free(env);
}

/* What make would run: an executable regular file. Anything else is left
 * to the real call, so make reports it in its own words. */
static int runnable(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* The PATH search of execvp, for the check above: the found path in buf. */
static const char *search_path(const char *file, const char *path, char *buf, size_t size) {
  if (strchr(file, '/') != NULL) return file;
  if (path == NULL) path = "/bin:/usr/bin";
  for (const char *p = path;; p++) {
    const char *end = strchr(p, ':');
    size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
    int w = n == 0 ? snprintf(buf, size, "%s", file) : snprintf(buf, size, "%.*s/%s", (int)n, p, file);
    if (w > 0 && (size_t)w < size && runnable(buf)) return buf;
    if (end == NULL) return NULL;
    p = end;
  }
}

/* Already linked by its caller (a nested mpmake starting its make). */
static int linked(char *const envp[]) {
  for (size_t i = 0; envp != NULL && envp[i] != NULL; i++)
    if (strncmp(envp[i], "__MPMAKE_SOCK=", 14) == 0) return 1;
  return 0;
}

static const char *env_path(char *const envp[]) {
  for (size_t i = 0; envp != NULL && envp[i] != NULL; i++)
    if (strncmp(envp[i], "PATH=", 5) == 0) return envp[i] + 5;
  return NULL;
}

/* The shim's environment for a job: the job's own, the private variables,
 * the program and the target (and what else its recipe makes). */
#define JOB_VARS 4
static char **job_env(const char *path, char *const envp[], const char *target,
                      const char *prereqs, const char *also, char ***made, char **vars) {
  vars[0] = concat("__MPMAKE_EXEC=", path, "");
  vars[1] = target != NULL ? concat("__MPMAKE_TARGET=", target, "") : NULL;
  vars[2] = target != NULL && prereqs != NULL ? concat("__MPMAKE_PREREQS=", prereqs, "") : NULL;
  vars[3] = target != NULL && also != NULL && also[0] != '\0' ? concat("__MPMAKE_ALSO=", also, "")
                                                                : NULL;
  char *extra[JOB_VARS + 1] = {NULL, NULL, NULL, NULL, NULL};
  size_t k = 0;
  for (size_t i = 0; i < JOB_VARS; i++)
    if (vars[i] != NULL) extra[k++] = vars[i];
  if (vars[0] == NULL) return NULL;
  return armed_env(envp, extra, 0, made);
}

static void free_vars(char **vars) {
  for (size_t i = 0; i < JOB_VARS; i++) free(vars[i]);
}

/* ------------------------------------------------------------------ */
/* Role 1 and 2: starting programs                                     */
/* ------------------------------------------------------------------ */

static int spawn_job(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                     const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
  const char *target = NULL, *prereqs = NULL, *also = NULL;
  int found = target_of(envp, &target, &prereqs, &also);
  if (found == 2) return real_spawn(pid, path, fa, attr, argv, envp); /* $(shell ...) */
  char **made = NULL, *vars[JOB_VARS] = {NULL, NULL, NULL, NULL};
  char **env = job_env(path, envp, target, prereqs, also, &made, vars);
  if (env == NULL) {
    free_vars(vars);
    return ENOMEM;
  }
  int r = real_spawn(pid, shim, fa, attr, argv, env);
  free_env(env, made);
  free_vars(vars);
  return r;
}

static int spawn_common(int search, pid_t *pid, const char *file,
                        const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr,
                        char *const argv[], char *const envp[]) {
  spawn_fn real = search ? real_spawnp : real_spawn;
  if (!armed || real_spawn == NULL || real == NULL) return ENOSYS;
  char buf[PATH_MAX];
  const char *path = search ? search_path(file, getenv("PATH"), buf, sizeof buf) : file;
  if (path == NULL || !runnable(path)) return real(pid, file, fa, attr, argv, envp);
  if (in_make) return spawn_job(pid, path, fa, attr, argv, envp);
  if (!is_make_name(path) || linked(envp)) return real(pid, file, fa, attr, argv, envp);
  char **made = NULL;
  char **env = armed_env(envp, NULL, 1, &made);
  if (env == NULL) return ENOMEM;
  int r = real(pid, file, fa, attr, argv, env);
  free_env(env, made);
  return r;
}

/* Keeps the caller's callee-saved registers in this frame for target_of:
   used at the top of each interposed posix_spawn entry. */
#if defined(__x86_64__)
#define KEEP_CALLER_REGISTERS() __asm__ volatile("" ::: "rbx", "r12", "r13", "r14", "r15", "memory")
#elif defined(__aarch64__)
#define KEEP_CALLER_REGISTERS()                                                              \
  __asm__ volatile("" ::: "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28", \
                   "memory")
#else
#define KEEP_CALLER_REGISTERS() ((void)0)
#endif

int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
  KEEP_CALLER_REGISTERS();
  if (!armed) {
    if (real_spawn == NULL) return ENOSYS;
    return real_spawn(pid, path, fa, attr, argv, envp);
  }
  return spawn_common(0, pid, path, fa, attr, argv, envp);
}

int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                 const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
  KEEP_CALLER_REGISTERS();
  if (!armed) {
    if (real_spawnp == NULL) return ENOSYS;
    return real_spawnp(pid, file, fa, attr, argv, envp);
  }
  return spawn_common(1, pid, file, fa, attr, argv, envp);
}

/* The exec family. In make: its own pid is make re-executing itself (keep
 * this library); another pid is a child make forked to run a job. */
static int exec_common(int search, const char *file, char *const argv[], char *const envp[]) {
  execve_fn real = search ? real_execvpe : real_execve;
  if (real == NULL) {
    errno = ENOSYS;
    return -1;
  }
  if (!armed) return real(file, argv, envp);
  char exe[PATH_MAX];
  if (in_make && getpid() == make_pid) {
    /* make re-executes itself (after remaking a makefile) by its argv[0],
     * which is the command typed (mpmake): that would start another mpmake,
     * without the options it was given. Itself, as without mpmake. */
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
      exe[n] = '\0';
      file = exe;
      search = 0;
      real = real_execve;
    }
  }
  char buf[PATH_MAX];
  const char *path = search ? search_path(file, env_path(envp), buf, sizeof buf) : file;
  if (path == NULL || !runnable(path)) return real(file, argv, envp);
  char **made = NULL;
  if (in_make && getpid() != make_pid) {
    char *vars[JOB_VARS] = {NULL, NULL, NULL, NULL};
    char **env = job_env(path, envp, NULL, NULL, NULL, &made, vars);
    if (env == NULL) return real(file, argv, envp);
    int r = real_execve(shim, argv, env);
    int e = errno;
    free_env(env, made);
    free_vars(vars);
    errno = e;
    return r;
  }
  if (!in_make && (!is_make_name(path) || linked(envp))) return real(file, argv, envp);
  char **env = armed_env(envp, NULL, 1, &made);
  if (env == NULL) return real(file, argv, envp);
  int r = real(file, argv, env);
  int e = errno;
  free_env(env, made);
  errno = e;
  return r;
}

int execve(const char *path, char *const argv[], char *const envp[]) {
  return exec_common(0, path, argv, envp);
}

int execv(const char *path, char *const argv[]) { return exec_common(0, path, argv, environ); }

int execvpe(const char *file, char *const argv[], char *const envp[]) {
  return exec_common(1, file, argv, envp);
}

int execvp(const char *file, char *const argv[]) { return exec_common(1, file, argv, environ); }
