/* Traffic tools for benchmarks/traffic.ts (compiled at bench time into a temporary directory).
 *   blast udp-send <src> <dst> <port> <seconds> <payload>   sendmmsg() as fast as possible; prints sent
 *   blast udp-recv <addr> <port> <seconds>                  counts datagrams; prints count first_ns last_ns
 *   blast tcp-serve <addr> <port> <seconds>                 accept() + close(); prints accepted
 *   blast tcp-conn <src> <dst> <port> <seconds>             connect()+RST close in a loop; prints connections failures
 * Rate-controlled modes for the data-plane cost (benchmarks/dataplane.ts), pinned to <cpu>:
 *   blast rate-send <cpu> <warmup_s> <seconds> <pps> <burst> <payload> <port> <src>@<dst> [<src>@<dst> ...]
 *       one socket per src@dst pair; every burst/pps × pairs seconds (absolute schedule, CLOCK_MONOTONIC)
 *       sends <burst> datagrams on each socket with one sendmmsg. Sends for <warmup_s> unmeasured, then
 *       for <seconds> measured; prints "sent_total sent_window window_start_ns window_end_ns late errors"
 *       (the window in real time, CLOCK_MONOTONIC: from the first measured burst to the end of the
 *       last; late = ticks that began after the next one was due: the sender could not keep the rate).
 *   blast sink <cpu> <addr> <port> <seconds>
 *       SCHED_BATCH (a woken sink does not preempt the sender mid-burst), recvmmsg(MSG_WAITFORONE)
 *       drains whatever is queued; prints the datagrams received at <seconds> or on SIGTERM.
 * Every mode stops by itself after <seconds> (+1 s for receivers): bounded. Prints "ready" on stderr once bound. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static struct sockaddr_in addr_of(const char *ip, int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) { fprintf(stderr, "bad address %s\n", ip); exit(2); }
  return a;
}

static void set_timeout(int fd, int ms) {
  struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

static void pin(const char *cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(atoi(cpu), &set);
  if (sched_setaffinity(0, sizeof set, &set)) { perror("sched_setaffinity"); exit(1); }
}

static void sleep_until(long long ns) {
  struct timespec t = { ns / 1000000000LL, ns % 1000000000LL };
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR) {}
}

static int rate_send(int argc, char **argv) {
  pin(argv[2]);
  double warm = atof(argv[3]), secs = atof(argv[4]), pps = atof(argv[5]);
  int burst = atoi(argv[6]), size = atoi(argv[7]), port = atoi(argv[8]);
  int n = argc - 9;
  if (n < 1 || n > 64 || burst < 1 || burst > 64 || pps <= 0) { fprintf(stderr, "rate-send: bad arguments\n"); return 2; }
  int fds[64];
  for (int i = 0; i < n; i++) {
    char pair[128];
    snprintf(pair, sizeof pair, "%s", argv[9 + i]);
    char *at = strchr(pair, '@');
    if (!at) { fprintf(stderr, "rate-send: %s is not src@dst\n", argv[9 + i]); return 2; }
    *at = 0;
    struct sockaddr_in src = addr_of(pair, 0), dst = addr_of(at + 1, port);
    fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
    if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&src, sizeof src) || connect(fds[i], (struct sockaddr *)&dst, sizeof dst)) { perror("rate-send"); return 1; }
  }
  static char buf[2048];
  struct mmsghdr m[64];
  struct iovec iov[64];
  for (int i = 0; i < burst; i++) { iov[i].iov_base = buf; iov[i].iov_len = size; memset(&m[i], 0, sizeof m[i]); m[i].msg_hdr.msg_iov = &iov[i]; m[i].msg_hdr.msg_iovlen = 1; }
  long long period = (long long)(1e9 * burst * n / pps);
  fprintf(stderr, "ready\n");
  long long t0 = now_ns(), due = t0 + (long long)(warm * 1e9), due_end = due + (long long)(secs * 1e9);
  long long next = t0, total = 0, window = 0, late = 0, errors = 0, start = 0, end = 0;
  int measuring = 0;
  for (;;) {
    sleep_until(next);
    long long now = now_ns();
    /* The window is real time: from just before the first measured burst to just after the last
     * one, however late a descheduled sender sends them. */
    if (!measuring && next >= due) { measuring = 1; start = now; }
    if (next >= due_end) { end = now_ns(); break; }
    if (now > next + period) late++;
    for (int i = 0; i < n; i++) {
      int left = burst;
      while (left > 0) {
        int r = sendmmsg(fds[i], m, left, 0);
        if (r <= 0) { errors++; break; }
        left -= r;
        total += r;
        if (measuring) window += r;
      }
    }
    next += period;
  }
  printf("%lld %lld %lld %lld %lld %lld\n", total, window, start, end, late, errors);
  return 0;
}

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static int sink(char **argv) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term; /* no SA_RESTART: a blocked recvmmsg returns EINTR */
  sigaction(SIGTERM, &sa, NULL);
  pin(argv[2]);
  struct sched_param sp = { 0 };
  if (sched_setscheduler(0, SCHED_BATCH, &sp)) { perror("SCHED_BATCH"); return 1; }
  struct sockaddr_in a = addr_of(argv[3], atoi(argv[4]));
  double secs = atof(argv[5]);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int rcvbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (bind(fd, (struct sockaddr *)&a, sizeof a)) { perror("sink bind"); return 1; }
  set_timeout(fd, 1000);
  enum { B = 64 };
  static char bufs[B][256];
  struct mmsghdr m[B];
  struct iovec iov[B];
  for (int i = 0; i < B; i++) { iov[i].iov_base = bufs[i]; iov[i].iov_len = sizeof bufs[i]; memset(&m[i], 0, sizeof m[i]); m[i].msg_hdr.msg_iov = &iov[i]; m[i].msg_hdr.msg_iovlen = 1; }
  fprintf(stderr, "ready\n");
  long long end = now_ns() + (long long)((secs + 1) * 1e9), count = 0;
  while (!stop && now_ns() < end) {
    int r = recvmmsg(fd, m, B, MSG_WAITFORONE, NULL);
    if (r > 0) count += r;
  }
  printf("%lld\n", count);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 5) { fprintf(stderr, "usage: see the header of blast.c\n"); return 2; }
  const char *mode = argv[1];
  if (!strcmp(mode, "rate-send") && argc >= 10) return rate_send(argc, argv);
  if (!strcmp(mode, "sink") && argc == 6) return sink(argv);
  if (!strcmp(mode, "udp-send") && argc == 7) {
    struct sockaddr_in src = addr_of(argv[2], 0), dst = addr_of(argv[3], atoi(argv[4]));
    double secs = atof(argv[5]);
    int size = atoi(argv[6]);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) || connect(fd, (struct sockaddr *)&dst, sizeof dst)) { perror("udp-send"); return 1; }
    static char buf[2048];
    enum { B = 32 };
    struct mmsghdr m[B];
    struct iovec iov[B];
    for (int i = 0; i < B; i++) { iov[i].iov_base = buf; iov[i].iov_len = size; memset(&m[i], 0, sizeof m[i]); m[i].msg_hdr.msg_iov = &iov[i]; m[i].msg_hdr.msg_iovlen = 1; }
    fprintf(stderr, "ready\n");
    long long end = now_ns() + (long long)(secs * 1e9), sent = 0, errors = 0;
    while (now_ns() < end) {
      int r = sendmmsg(fd, m, B, 0);
      if (r > 0) sent += r; else errors++;
    }
    printf("%lld %lld\n", sent, errors);
    return 0;
  }
  if (!strcmp(mode, "udp-recv") && argc == 5) {
    struct sockaddr_in a = addr_of(argv[2], atoi(argv[3]));
    double secs = atof(argv[4]);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int rcvbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (bind(fd, (struct sockaddr *)&a, sizeof a)) { perror("udp-recv bind"); return 1; }
    set_timeout(fd, 100);
    enum { B = 64 };
    static char bufs[B][2048];
    struct mmsghdr m[B];
    struct iovec iov[B];
    for (int i = 0; i < B; i++) { iov[i].iov_base = bufs[i]; iov[i].iov_len = sizeof bufs[i]; memset(&m[i], 0, sizeof m[i]); m[i].msg_hdr.msg_iov = &iov[i]; m[i].msg_hdr.msg_iovlen = 1; }
    fprintf(stderr, "ready\n");
    long long end = now_ns() + (long long)((secs + 1) * 1e9), count = 0, first = 0, last = 0;
    while (now_ns() < end) {
      int r = recvmmsg(fd, m, B, 0, NULL);
      if (r <= 0) continue;
      last = now_ns();
      if (!first) first = last;
      count += r;
    }
    printf("%lld %lld %lld\n", count, first, last);
    return 0;
  }
  if (!strcmp(mode, "tcp-serve") && argc == 5) {
    struct sockaddr_in a = addr_of(argv[2], atoi(argv[3]));
    double secs = atof(argv[4]);
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 4096)) { perror("tcp-serve"); return 1; }
    set_timeout(fd, 100);
    fprintf(stderr, "ready\n");
    long long end = now_ns() + (long long)((secs + 1) * 1e9), count = 0;
    while (now_ns() < end) {
      int c = accept(fd, NULL, NULL);
      if (c < 0) continue;
      count++;
      close(c);
    }
    printf("%lld\n", count);
    return 0;
  }
  if (!strcmp(mode, "tcp-conn") && argc == 6) {
    struct sockaddr_in src = addr_of(argv[2], 0), dst = addr_of(argv[3], atoi(argv[4]));
    double secs = atof(argv[5]);
    struct linger lg = { 1, 0 };
    fprintf(stderr, "ready\n");
    long long end = now_ns() + (long long)(secs * 1e9), ok = 0, failed = 0;
    while (now_ns() < end) {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      if (fd < 0) { failed++; continue; }
      struct timeval tv = { 1, 0 };
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      if (bind(fd, (struct sockaddr *)&src, sizeof src) == 0 && connect(fd, (struct sockaddr *)&dst, sizeof dst) == 0) ok++;
      else failed++;
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg); /* RST: no TIME_WAIT, no port exhaustion */
      close(fd);
    }
    printf("%lld %lld\n", ok, failed);
    return 0;
  }
  fprintf(stderr, "usage: see the header of blast.c\n");
  return 2;
}
