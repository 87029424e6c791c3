/*
 * How mpmake-spawnd and mpmake-exec end a job whose command could not be
 * executed: as a shell reports it, 127 when there is no such command, 126
 * when it exists but cannot run.
 */
#ifndef MPMAKE_EXEC_FAILED_H
#define MPMAKE_EXEC_FAILED_H

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void exec_failed(const char *name) {
  int e = errno;
  if (e == ENOENT || e == ENOTDIR) {
    dprintf(2, "mpm agent: %s: %s\n", name,
            strchr(name, '/') ? "No such file or directory" : "command not found");
    _exit(127);
  }
  dprintf(2, "mpm agent: %s: %s\n", name, strerror(e));
  _exit(126);
}

#endif
