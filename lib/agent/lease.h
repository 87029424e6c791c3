/*
 * Job leases, shared by mpmake-spawnd and mpmake-exec (the supervisors of
 * an agent's jobs). The agent keeps one record per client connection in a
 * lease file that only it writes; a job runs only while its record's
 * deadline (CLOCK_MONOTONIC, ns, the same clock for every process of the
 * machine) is in the future. The agent moves the deadline on while the
 * client's heartbeats arrive; when they stop, when the agent is frozen or
 * gone, the deadline passes and the supervisor kills the job's process
 * group on its own. Deadline 0: revoked (the client is gone).
 *
 * Record n, at offset 16 n: u64 deadline, u64 deadline ^ LEASE_CHECK, both
 * little-endian; a record that does not check (being written) is read again.
 */
#ifndef MPMAKE_LEASE_H
#define MPMAKE_LEASE_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LEASE_CHECK 0x6d706d616b656c73ull
/* How often a supervisor looks at its lease. */
#define LEASE_POLL_MS 50

static uint64_t lease_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t lease_le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* The deadline of record `slot`; 0 (lapsed) when it cannot be read. */
static uint64_t lease_deadline(int fd, uint32_t slot) {
  unsigned char rec[16];
  for (int tries = 0; tries < 100; tries++) {
    ssize_t n = pread(fd, rec, sizeof rec, (off_t)slot * 16);
    if (n < 0 && errno == EINTR) continue;
    if (n != (ssize_t)sizeof rec) return 0;
    uint64_t d = lease_le64(rec), c = lease_le64(rec + 8);
    if ((d ^ LEASE_CHECK) == c) return d;
  }
  return 0;
}

/* A job's target as it was when the job started. */
struct target_state {
  char *path; /* NULL: none */
  int existed;
  struct timespec mtime;
  ino_t ino;
};

static void target_note(struct target_state *t, const char *path) {
  memset(t, 0, sizeof *t);
  if (!path || !path[0]) return;
  t->path = strdup(path);
  struct stat st;
  if (lstat(path, &st) == 0) {
    t->existed = 1;
    t->mtime = st.st_mtim;
    t->ino = st.st_ino;
  }
}

/*
 * How long after a job's end began (its lease's deadline, or the moment its
 * supervisor saw the lease revoked or the agent gone) its target may still
 * be deleted. Half the client's grace (lib/protocol/lease.ts: leaseGraceMs,
 * at least 1 s): a client re-runs a lost job only after deadline + grace,
 * so a deletion within the window cannot hit the re-run's target. Past it,
 * the target is left alone: on a cut link the supervisor's own lstat and
 * unlink wait for the file server, and would land when the link returns,
 * on the target the re-run made meanwhile (the re-run rewrites the target
 * anyway).
 */
#define TARGET_DELETE_WINDOW_NS 500000000ull

/*
 * The job was killed before it finished: as make does for a recipe killed
 * by a signal, delete its target when it is a regular file that the job
 * created or changed, so no later build takes it as made; but only within
 * TARGET_DELETE_WINDOW_NS of `ended_ns` (CLOCK_MONOTONIC).
 */
static void target_remove_if_changed(const struct target_state *t, uint64_t ended_ns) {
  struct stat st;
  if (!t->path || lstat(t->path, &st) != 0 || !S_ISREG(st.st_mode)) return;
  if (t->existed && st.st_ino == t->ino && st.st_mtim.tv_sec == t->mtime.tv_sec &&
      st.st_mtim.tv_nsec == t->mtime.tv_nsec)
    return;
  if (lease_now_ns() - ended_ns > TARGET_DELETE_WINDOW_NS) return;
  unlink(t->path);
}

#endif
