// netns-exec: runs one command inside a network namespace, the way `ip netns exec` does, for
// lib/spawn.ts. It exists so that setns(2) happens in a process of its own between fork and exec,
// never on the Node main thread or a libuv pool thread, and without a shell.
//
//   netns-exec [options] --netns PATH -- COMMAND [ARG...]
//
//   --netns PATH      namespace file to enter (/run/netns/NAME, /proc/PID/ns/net); required
//   --name NAME       name for /etc/netns/NAME (default: the basename of PATH)
//   --pdeathsig SIG   signal the command gets when the process that spawned it dies: a name
//                     (KILL, SIGTERM), a number, or "none" (default KILL)
//   --parent PID      the spawner's pid; if it is already gone, exit at once (default: getppid()
//                     at start)
//   --cwd DIR         working directory
//   --cgroup DIR      a cgroup v2 directory to join (its cgroup.procs) before anything else, so the
//                     command and every process it forks are in that group from their first
//                     instruction and can all be killed together
//   --uid N --gid N   numeric ids to switch to; --uid needs --gid (no silent group 0). Every
//                     supplementary group is dropped (setgroups), so none of root's remain
//   --setsid          new session and process group, so the whole group can be signalled
//   --keep-fd N       keep fd N (> 2) open in the command; repeatable. Every other fd above 2 is
//                     closed.
//   --exec-fd N       keep fd N through the setup and let exec close it: whoever holds the other
//                     end of that pipe reads EOF once the command really runs (in the namespace).
//
// Exit status when the command did not start (otherwise the command's own status), as with
// `env`, `nice`, `chroot` and `ip netns exec`:
//   125  netns-exec itself failed: bad usage, namespace missing or not a network namespace,
//        setns, mounts, cwd, uid/gid, fds; stderr says which step and why
//   126  the command was found but could not be executed (EACCES, ENOEXEC, ...)
//   127  the command was not found
// Every message on stderr starts with "netns-exec: ".
//
// It refuses to run when the kernel set AT_SECURE (a setuid/setgid bit or file capabilities on the
// executable): it would then be a way for any user to run commands with root's namespaces and
// credentials. It is meant to be run by root (or a process with CAP_SYS_ADMIN), never installed
// privileged.
//
// Order matters: the parent-death signal first (so a controller killed while we set up leaves
// nothing behind), then the cgroup (before the mount namespace: its fresh /sys would hide the
// cgroup file system), the namespace, mounts, cwd, credentials (which clear the parent-death
// signal, so it is set again after them), fds, exec.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <grp.h>

enum { EXIT_SETUP = 125, EXIT_CANNOT_EXEC = 126, EXIT_NOT_FOUND = 127 };
enum { MAX_KEEP_FDS = 64 };
#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

static const char kNetnsEtcDir[] = "/etc/netns";

static void fail(int status, const char* fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void fail(int status, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("netns-exec: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(status);
}

static void warn(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("netns-exec: warning: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

struct options {
  const char* netns;
  const char* name;
  const char* cwd;
  const char* cgroup;
  int pdeathsig;
  long parent;
  long uid, gid;
  int setsid;
  int keep[MAX_KEEP_FDS];
  int nkeep;
  int exec_fd;
  char** command;
};

static long parse_long(const char* opt, const char* s, long min, long max) {
  char* end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (!*s || *end || errno || v < min || v > max)
    fail(EXIT_SETUP, "%s: '%s' is not an integer in %ld..%ld", opt, s, min, max);
  return v;
}

static int parse_signal(const char* s) {
  static const struct { const char* name; int sig; } kSignals[] = {
      {"KILL", SIGKILL}, {"TERM", SIGTERM}, {"INT", SIGINT},   {"HUP", SIGHUP},
      {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
  };
  if (strcmp(s, "none") == 0 || strcmp(s, "0") == 0) return 0;
  if (*s >= '0' && *s <= '9') return (int)parse_long("--pdeathsig", s, 1, SIGRTMAX);
  const char* bare = strncmp(s, "SIG", 3) == 0 ? s + 3 : s;
  for (size_t i = 0; i < sizeof kSignals / sizeof kSignals[0]; i++)
    if (strcmp(bare, kSignals[i].name) == 0) return kSignals[i].sig;
  fail(EXIT_SETUP, "--pdeathsig: unknown signal '%s' (use KILL, TERM, INT, HUP, QUIT, USR1, USR2, a number or none)", s);
}

static void usage_error(const char* what) {
  fail(EXIT_SETUP, "%s\nusage: netns-exec [--name NAME] [--pdeathsig SIG] [--parent PID] [--cwd DIR] "
       "[--cgroup DIR] [--uid N --gid N] [--setsid] [--keep-fd N]... --netns PATH -- COMMAND [ARG...]", what);
}

static void parse(int argc, char** argv, struct options* o) {
  memset(o, 0, sizeof *o);
  o->pdeathsig = SIGKILL;
  o->parent = -1;
  o->uid = o->gid = -1;
  int i = 1;
  for (; i < argc; i++) {
    const char* a = argv[i];
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (strcmp(a, "--setsid") == 0) {
      o->setsid = 1;
      continue;
    }
    if (i + 1 >= argc) usage_error(strncmp(a, "--", 2) == 0 ? "an option is missing its value" : "missing '--' before the command");
    const char* v = argv[++i];
    if (strcmp(a, "--netns") == 0) o->netns = v;
    else if (strcmp(a, "--name") == 0) o->name = v;
    else if (strcmp(a, "--cwd") == 0) o->cwd = v;
    else if (strcmp(a, "--cgroup") == 0) o->cgroup = v;
    else if (strcmp(a, "--pdeathsig") == 0) o->pdeathsig = parse_signal(v);
    else if (strcmp(a, "--parent") == 0) o->parent = parse_long(a, v, 1, INT_MAX);
    else if (strcmp(a, "--uid") == 0) o->uid = parse_long(a, v, 0, 0xfffffffe);
    else if (strcmp(a, "--gid") == 0) o->gid = parse_long(a, v, 0, 0xfffffffe);
    else if (strcmp(a, "--exec-fd") == 0) {
      // Kept through setup, closed by exec itself: the parent sees EOF exactly when exec succeeded.
      if (o->nkeep == MAX_KEEP_FDS) fail(EXIT_SETUP, "--exec-fd: too many fds");
      o->exec_fd = (int)parse_long(a, v, 3, INT_MAX);
      o->keep[o->nkeep++] = o->exec_fd;
    } else if (strcmp(a, "--keep-fd") == 0) {
      if (o->nkeep == MAX_KEEP_FDS) fail(EXIT_SETUP, "--keep-fd: at most %d fds", MAX_KEEP_FDS);
      o->keep[o->nkeep++] = (int)parse_long(a, v, 3, INT_MAX);
    } else {
      fail(EXIT_SETUP, "unknown option '%s'", a);
    }
  }
  if (!o->netns) usage_error("--netns PATH is required");
  // Switching the user but keeping root's group would leave the command with group 0's access.
  if (o->uid >= 0 && o->gid < 0) usage_error("--uid needs --gid too (the user's group; group 0 is never kept silently)");
  if (o->cgroup && (o->cgroup[0] != '/' || !o->cgroup[1])) usage_error("--cgroup needs an absolute cgroup directory");
  if (i >= argc) usage_error("no command given after '--'");
  o->command = argv + i;
  if (!o->name) {
    const char* slash = strrchr(o->netns, '/');
    o->name = slash ? slash + 1 : o->netns;
  }
}

// Sets the parent-death signal and makes sure the parent did not die before it took effect.
static void arm_pdeathsig(const struct options* o) {
  if (!o->pdeathsig) return;
  if (prctl(PR_SET_PDEATHSIG, (unsigned long)o->pdeathsig) < 0)
    fail(EXIT_SETUP, "prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
  if (getppid() != (pid_t)o->parent) fail(EXIT_SETUP, "the parent process (pid %ld) is gone", o->parent);
}

// Moves this process into the cgroup v2 group DIR: every process the command forks is then in it.
static void join_cgroup(const char* dir) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/cgroup.procs", dir) >= (int)sizeof path) fail(EXIT_SETUP, "--cgroup: path too long");
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) fail(EXIT_SETUP, "cannot join cgroup '%s': open %s: %s", dir, path, strerror(errno));
  struct statfs sf;
  if (fstatfs(fd, &sf) < 0) fail(EXIT_SETUP, "cannot join cgroup '%s': fstatfs: %s", dir, strerror(errno));
  if (sf.f_type != CGROUP2_SUPER_MAGIC) fail(EXIT_SETUP, "cannot join cgroup '%s': not a cgroup v2 directory", dir);
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (write(fd, pid, (size_t)n) != n) fail(EXIT_SETUP, "cannot join cgroup '%s': write %s: %s", dir, path, strerror(errno));
  close(fd);
}

static void enter_netns(const char* path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(EXIT_SETUP, "cannot open network namespace '%s': %s", path, strerror(errno));
  if (setns(fd, CLONE_NEWNET) < 0)
    fail(EXIT_SETUP, "setns '%s': %s%s", path, strerror(errno),
         errno == EINVAL ? " (not a network namespace file?)" : "");
  close(fd);
}

// What `ip netns exec` does after setns: a private view of the mounts, /sys showing this
// namespace's devices, and /etc/netns/NAME/* bound over /etc/*.
static void prepare_mounts(const char* name) {
  if (unshare(CLONE_NEWNS) < 0) fail(EXIT_SETUP, "unshare(CLONE_NEWNS): %s", strerror(errno));
  // Receive the host's mount events but send none back.
  if (mount("", "/", NULL, MS_SLAVE | MS_REC, NULL) < 0)
    fail(EXIT_SETUP, "mount --make-rslave /: %s", strerror(errno));

  unsigned long flags = 0;
  struct statvfs st;
  if (statvfs("/sys", &st) == 0) {
    if (st.f_flag & ST_RDONLY) flags |= MS_RDONLY;
    if (st.f_flag & ST_NOSUID) flags |= MS_NOSUID;
    if (st.f_flag & ST_NODEV) flags |= MS_NODEV;
    if (st.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
    if (st.f_flag & ST_NOATIME) flags |= MS_NOATIME;
    if (st.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
    if (st.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  }
  umount2("/sys", MNT_DETACH);  // failing is fine: perhaps nothing was mounted there
  if (mount(name, "/sys", "sysfs", flags, NULL) < 0) fail(EXIT_SETUP, "mount sysfs on /sys: %s", strerror(errno));

  if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strchr(name, '/') || !*name) return;
  char dir[PATH_MAX];
  if (snprintf(dir, sizeof dir, "%s/%s", kNetnsEtcDir, name) >= (int)sizeof dir) return;
  DIR* d = opendir(dir);  // glibc opens it O_CLOEXEC
  if (!d) {
    if (errno != ENOENT && errno != ENOTDIR) warn("cannot read %s: %s", dir, strerror(errno));
    return;
  }
  struct dirent* e;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char from[PATH_MAX], to[PATH_MAX];
    if (snprintf(from, sizeof from, "%s/%s", dir, e->d_name) >= (int)sizeof from ||
        snprintf(to, sizeof to, "/etc/%s", e->d_name) >= (int)sizeof to)
      continue;
    // As iproute2: a file with no counterpart in /etc is reported and skipped.
    if (mount(from, to, "none", MS_BIND, NULL) < 0) warn("bind %s -> %s: %s", from, to, strerror(errno));
  }
  closedir(d);
}

static void drop_privileges(const struct options* o) {
  if (o->uid < 0 && o->gid < 0) return;
  // No supplementary group of root's may remain: the command gets exactly the ids asked for.
  if (setgroups(0, NULL) < 0) fail(EXIT_SETUP, "setgroups: %s", strerror(errno));
  if (o->gid >= 0 && setresgid((gid_t)o->gid, (gid_t)o->gid, (gid_t)o->gid) < 0) fail(EXIT_SETUP, "setgid %ld: %s", o->gid, strerror(errno));
  if (o->uid >= 0 && setresuid((uid_t)o->uid, (uid_t)o->uid, (uid_t)o->uid) < 0) fail(EXIT_SETUP, "setuid %ld: %s", o->uid, strerror(errno));
  // Make sure it took, for every id, and cannot be undone.
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0) fail(EXIT_SETUP, "getresuid: %s", strerror(errno));
  if (o->uid >= 0 && (ru != (uid_t)o->uid || eu != (uid_t)o->uid || su != (uid_t)o->uid)) fail(EXIT_SETUP, "setuid %ld did not take", o->uid);
  if (o->gid >= 0 && (rg != (gid_t)o->gid || eg != (gid_t)o->gid || sg != (gid_t)o->gid)) fail(EXIT_SETUP, "setgid %ld did not take", o->gid);
  if (getgroups(0, NULL) != 0) fail(EXIT_SETUP, "supplementary groups remain after setgroups");
  if (o->uid > 0 && setuid(0) == 0) fail(EXIT_SETUP, "could regain uid 0 after setuid %ld", o->uid);
}

static int cmp_int(const void* a, const void* b) {
  int x = *(const int*)a, y = *(const int*)b;
  return x < y ? -1 : x > y;
}

static int is_kept(const struct options* o, int fd) {
  for (int i = 0; i < o->nkeep; i++)
    if (o->keep[i] == fd) return 1;
  return 0;
}

static int close_fds_range(unsigned first, unsigned last) {
#ifdef SYS_close_range
  if (first > last) return 0;
  return (int)syscall(SYS_close_range, first, last, 0u);
#else
  errno = ENOSYS;
  return -1;
#endif
}

// Closes every fd above 2 except the kept ones (which lose FD_CLOEXEC so they survive exec).
static void close_other_fds(struct options* o) {
  qsort(o->keep, (size_t)o->nkeep, sizeof o->keep[0], cmp_int);
  for (int i = 0; i < o->nkeep; i++) {
    int fl = fcntl(o->keep[i], F_GETFD);
    if (fl < 0) fail(EXIT_SETUP, "--keep-fd %d: %s", o->keep[i], strerror(errno));
    if ((fl & FD_CLOEXEC) && fcntl(o->keep[i], F_SETFD, fl & ~FD_CLOEXEC) < 0)
      fail(EXIT_SETUP, "--keep-fd %d: %s", o->keep[i], strerror(errno));
  }
  // The gaps between kept fds, then everything above the last one.
  unsigned next = 3;
  int ok = 1;
  for (int i = 0; i <= o->nkeep && ok; i++) {
    unsigned last = i < o->nkeep ? (unsigned)o->keep[i] - 1 : ~0U;
    if (close_fds_range(next, last) < 0) ok = 0;
    if (i < o->nkeep) next = (unsigned)o->keep[i] + 1;
  }
  if (ok) return;
  if (errno != ENOSYS && errno != EINVAL) fail(EXIT_SETUP, "close_range: %s", strerror(errno));

  // Kernels before 5.9: list /proc/self/fd first, then close, so the listing's own fd is not
  // closed under it.
  DIR* d = opendir("/proc/self/fd");
  if (!d) fail(EXIT_SETUP, "cannot list /proc/self/fd: %s", strerror(errno));
  int self = dirfd(d);
  int fds[4096], n = 0;
  struct dirent* e;
  while ((e = readdir(d))) {
    char* end;
    long fd = strtol(e->d_name, &end, 10);
    if (*end || e->d_name[0] == '.' || fd <= 2 || fd == self || is_kept(o, (int)fd)) continue;
    if (n == (int)(sizeof fds / sizeof fds[0])) fail(EXIT_SETUP, "too many open fds to close");
    fds[n++] = (int)fd;
  }
  closedir(d);
  for (int i = 0; i < n; i++) close(fds[i]);
}

int main(int argc, char** argv) {
  // The first thing: learn who the parent is, before it has a chance to be replaced by a reaper.
  pid_t first_parent = getppid();
  // Privileged by a setuid/setgid bit or file capabilities: any user could then run commands in
  // any namespace with our credentials. Refuse before looking at a single argument.
  if (getauxval(AT_SECURE)) {
    fputs("netns-exec: refusing to run: the kernel marked this execution secure (AT_SECURE: a setuid or "
          "setgid bit or file capabilities on the executable). netns-exec must be run by root, never "
          "installed privileged; remove the bit (chmod u-s,g-s) or the capabilities (setcap -r)\n", stderr);
    return EXIT_SETUP;
  }
  struct options o;
  parse(argc, argv, &o);
  if (o.parent < 0) o.parent = first_parent;

  arm_pdeathsig(&o);
  if (o.cgroup) join_cgroup(o.cgroup);
  enter_netns(o.netns);
  prepare_mounts(o.name);
  // EPERM: already a session leader (Node's `detached` did it), which is what was asked for.
  if (o.setsid && setsid() < 0 && !(errno == EPERM && getsid(0) == getpid())) fail(EXIT_SETUP, "setsid: %s", strerror(errno));
  if (o.cwd && chdir(o.cwd) < 0) fail(EXIT_SETUP, "cannot change directory to '%s': %s", o.cwd, strerror(errno));
  drop_privileges(&o);
  // Changing credentials clears the parent-death signal (prctl(2)); set it again.
  arm_pdeathsig(&o);
  close_other_fds(&o);
  if (o.exec_fd > 0 && fcntl(o.exec_fd, F_SETFD, FD_CLOEXEC) < 0) fail(EXIT_SETUP, "--exec-fd %d: %s", o.exec_fd, strerror(errno));

  execvp(o.command[0], o.command);
  int err = errno;
  if (err == ENOENT)
    fail(EXIT_NOT_FOUND, "%s: %s", o.command[0], strchr(o.command[0], '/') ? strerror(err) : "command not found");
  fail(EXIT_CANNOT_EXEC, "%s: cannot execute: %s", o.command[0], strerror(err));
}
