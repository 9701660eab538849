/*
** rawread.c: the baseline the benchmarks compare against, the cheapest
** way a C program reads a /proc file: open, read until EOF, close.
** With "pread" it keeps one fd and preads from offset 0 instead: the
** kernel's own cost of producing the file, the floor for any reader.
** A file longer than one page comes in several reads: "preadall" preads
** from the kept fd until EOF, as memprobe does.
** usage: rawread PATH N [pread|preadall]  ->  CPU ns per read (best of 5)
*/
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now (void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static char buf[65536];

static int pread_once (int fd) {
  return pread(fd, buf, sizeof(buf), 0) < 0 ? -1 : 0;
}

/* pread from offset 0 until EOF; the buffer is reused, only the kernel's
** work counts. */
static int pread_all (int fd) {
  off_t off = 0;
  ssize_t n;
  while ((n = pread(fd, buf, sizeof(buf), off)) > 0)
    off += n;
  return n < 0 ? -1 : 0;
}

static int read_once (const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n;
  if (fd < 0)
    return -1;
  while ((n = read(fd, buf, sizeof(buf))) > 0)
    ;
  close(fd);
  return n < 0 ? -1 : 0;
}

int main (int argc, char **argv) {
  long i, n;
  int rep, fd = -1, all = 0;
  double best = -1;
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: rawread PATH N [pread|preadall]\n");
    return 2;
  }
  all = (argc == 4 && strcmp(argv[3], "preadall") == 0);
  if (argc == 4 && (fd = open(argv[1], O_RDONLY | O_CLOEXEC)) < 0) {
    perror(argv[1]);
    return 1;
  }
  n = atol(argv[2]);
  if (n <= 0 || read_once(argv[1]) != 0) {
    perror(argv[1]);
    return 1;
  }
  for (rep = 0; rep < 5; rep++) {
    double t0 = now(), t;
    for (i = 0; i < n; i++) {
      if (fd >= 0 && all)
        pread_all(fd);
      else if (fd >= 0)
        pread_once(fd);
      else
        read_once(argv[1]);
    }
    t = (now() - t0) / (double)n;
    if (best < 0 || t < best)
      best = t;
  }
  printf("%.1f\n", best);
  return 0;
}
