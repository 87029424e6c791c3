/*
 * Revalidating what another machine wrote (shared file systems; DESIGN.md,
 * "Shared file systems, as they really are"), shared by the shim (a remote
 * job's targets, before make sees its status; `--mp-revalidate`) and the
 * agent's job spawner (a job's inputs, in the job's own process before it
 * execs, as the job's user). Wire formats: EXPECT and FRESH in
 * lib/shim/shim-protocol.ts.
 */
#ifndef MPMAKE_REVALIDATE_H
#define MPMAKE_REVALIDATE_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

static uint32_t rv_get_u32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static uint64_t rv_get_u64(const unsigned char *p) {
  return ((uint64_t)rv_get_u32(p) << 32) | (uint64_t)rv_get_u32(p + 4);
}

static void rv_put_u32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

/* One file as its writer saw it (see EXPECT in shim-protocol.ts). */
struct expect {
  const char *path;
  int absent;
  uint64_t size;
  int64_t mtime_s;
  uint32_t mtime_ns;
  uint64_t ino; /* 0: unknown */
  int ino_checked, ino_comparable, fresh;
  int missing; /* at the last look: the writer saw it, here there was none */
};

struct expectations {
  uint32_t wait_ms;
  const char *from; /* the node that wrote them, for messages */
  size_t n;
  struct expect *e;
};

#define FUSE_MAGIC 0x65735546L

/* Parses an EXPECT payload; the strings point into p, which must live on. */
static int parse_expect(const unsigned char *p, size_t n, struct expectations *out) {
  if (n < 8) return -1;
  out->wait_ms = rv_get_u32(p);
  uint32_t count = rv_get_u32(p + 4);
  size_t off = 8;
  const unsigned char *nul = memchr(p + off, 0, n - off);
  if (nul == NULL) return -1;
  out->from = (const char *)(p + off);
  off = (size_t)(nul - p) + 1;
  if (count > 65536) return -1;
  out->e = calloc(count > 0 ? count : 1, sizeof *out->e);
  if (out->e == NULL) return -1;
  out->n = count;
  for (uint32_t i = 0; i < count; i++) {
    if (n - off < 29) return -1;
    struct expect *e = &out->e[i];
    e->absent = p[off] != 0;
    e->size = rv_get_u64(p + off + 1);
    e->mtime_s = (int64_t)rv_get_u64(p + off + 9);
    e->mtime_ns = rv_get_u32(p + off + 17);
    e->ino = rv_get_u64(p + off + 21);
    off += 29;
    nul = memchr(p + off, 0, n - off);
    if (nul == NULL) return -1;
    e->path = (const char *)(p + off);
    off = (size_t)(nul - p) + 1;
  }
  return 0;
}

static int64_t rv_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The writer saw `path` (a file, or with is_dir its directory), this
 * machine sees no such name: perhaps a cached "no such file" (FUSE keeps
 * one for negative_timeout, and opening the directory does not drop it).
 * An exclusive create looks the name up afresh (the kernel revalidates a
 * cached entry for O_EXCL) and, the name being there, fails with EEXIST
 * without touching it. Where the name is really free the create succeeds
 * and is undone at once. */
static void relookup(const char *path, int is_dir) {
  if (is_dir) {
    if (mkdir(path, 0700) == 0) rmdir(path);
    return;
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0600);
  if (fd >= 0) {
    close(fd);
    unlink(path);
  }
}

/* Whether what make's stat() sees now is what the writer saw. First the
 * parent directory is opened (on NFS that revalidates it and drops stale
 * negative entries), a name the writer saw and this machine does not is
 * looked up afresh (relookup), then statx with AT_STATX_FORCE_SYNC
 * refreshes the attribute cache, then plain stat() -- make's own view --
 * is compared.
 * Inode numbers are compared only where they are the server's (not FUSE,
 * which numbers inodes per mount); a side with whole-second mtimes (sftp)
 * is compared to the second. */
static int sees_as_writer(struct expect *e) {
  char dir[PATH_MAX];
  const char *slash = strrchr(e->path, '/');
  if (slash == NULL) {
    strcpy(dir, ".");
  } else {
    size_t dn = (size_t)(slash - e->path);
    if (dn == 0) dn = 1;
    if (dn >= sizeof dir) dn = sizeof dir - 1;
    memcpy(dir, e->path, dn);
    dir[dn] = '\0';
  }
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int dir_missing = dfd < 0 && errno == ENOENT;
  if (dfd >= 0) close(dfd);
  struct stat st;
  e->missing = 0;
  if (!e->absent && lstat(e->path, &st) != 0 && errno == ENOENT) {
    if (dir_missing) relookup(dir, 1);
    relookup(e->path, 0);
  }
#ifdef STATX_BASIC_STATS
  struct statx sx;
  (void)statx(AT_FDCWD, e->path, AT_STATX_FORCE_SYNC, STATX_INO | STATX_SIZE | STATX_MTIME, &sx);
#endif
  if (stat(e->path, &st) != 0) {
    if (e->absent) return errno == ENOENT;
    e->missing = errno == ENOENT;
    return 0;
  }
  if (e->absent) return 0;
  if ((uint64_t)st.st_size != e->size) return 0;
  if ((int64_t)st.st_mtim.tv_sec != e->mtime_s) return 0;
  if (e->mtime_ns != 0 && st.st_mtim.tv_nsec != 0 && (uint32_t)st.st_mtim.tv_nsec != e->mtime_ns)
    return 0;
  if (e->ino != 0) {
    if (!e->ino_checked) {
      struct statfs sf;
      e->ino_checked = 1;
      e->ino_comparable = statfs(e->path, &sf) == 0 && (long)sf.f_type != FUSE_MAGIC;
    }
    if (e->ino_comparable && (uint64_t)st.st_ino != e->ino) return 0;
  }
  return 1;
}

/* Waits, with short growing sleeps, until every file looks here as its
 * writer saw it, or wait_ms has passed. Returns how many are still not. */
static size_t revalidate(struct expectations *x, uint32_t *lag_us, uint32_t *retries) {
  int64_t start = rv_now_us();
  int64_t bound = (int64_t)x->wait_ms * 1000;
  int64_t sleep_us = 500;
  size_t left = x->n;
  *retries = 0;
  for (;;) {
    left = 0;
    for (size_t i = 0; i < x->n; i++) {
      if (!x->e[i].fresh) x->e[i].fresh = sees_as_writer(&x->e[i]);
      if (!x->e[i].fresh) left++;
    }
    int64_t spent = rv_now_us() - start;
    if (left == 0 || spent >= bound) break;
    int64_t nap = sleep_us < bound - spent ? sleep_us : bound - spent;
    struct timespec ts = {(time_t)(nap / 1000000), (long)(nap % 1000000) * 1000};
    nanosleep(&ts, NULL);
    (*retries)++;
    if (sleep_us < 100000) sleep_us *= 2;
  }
  int64_t lag = rv_now_us() - start;
  *lag_us = lag > 0xffffffffLL ? 0xffffffffu : (uint32_t)lag;
  return left;
}

/* The FRESH payload: u32 lag_us, u32 retries, u32 stale count, stale paths. */
static unsigned char *fresh_payload(const struct expectations *x, uint32_t lag_us,
                                    uint32_t retries, size_t stale, size_t *len) {
  size_t total = 12;
  for (size_t i = 0; i < x->n; i++)
    if (!x->e[i].fresh) total += strlen(x->e[i].path) + 1;
  unsigned char *p = malloc(total);
  if (p == NULL) return NULL;
  rv_put_u32(p, lag_us);
  rv_put_u32(p + 4, retries);
  rv_put_u32(p + 8, (uint32_t)stale);
  size_t off = 12;
  for (size_t i = 0; i < x->n; i++) {
    if (x->e[i].fresh) continue;
    size_t k = strlen(x->e[i].path) + 1;
    memcpy(p + off, x->e[i].path, k);
    off += k;
  }
  *len = total;
  return p;
}

#endif
