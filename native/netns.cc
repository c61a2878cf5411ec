#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <linux/nsfs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "attr.h"

namespace nc {

namespace {
constexpr const char* kRunDir = "/run/netns";

void Finalize(Napi::Env, NsPtr* p) { delete p; }

// Marks Externals this addon made as namespace handles (random, fixed for the addon's lifetime).
constexpr napi_type_tag kNsTag = {0x6e65746e73636c75ULL, 0x8f3c2a17d94b6e05ULL};

// /run/netns must be a shared mount point so that namespace bind mounts propagate to every mount
// namespace (for instance ones made by `ip netns exec`). The first user makes it so; a lock on the
// directory keeps two first users from bind-mounting it twice.
int PrepareRunDir(std::string* syscall) {
  if (mkdir(kRunDir, 0755) < 0 && errno != EEXIST) {
    *syscall = "mkdir";
    return errno;
  }
  int dfd = open(kRunDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    *syscall = "open";
    return errno;
  }
  int rc = 0;
  if (flock(dfd, LOCK_EX) < 0) {
    *syscall = "flock";
    rc = errno;
  }
  bool bound = false;
  while (!rc && mount("", kRunDir, "none", MS_SHARED | MS_REC, nullptr) < 0) {
    if (errno != EINVAL || bound) {
      *syscall = "mount";
      rc = errno;
      break;
    }
    // Not a mount point yet: make it one by binding it onto itself, then mark it shared.
    if (mount(kRunDir, kRunDir, "none", MS_BIND | MS_REC, nullptr) < 0) {
      *syscall = "mount";
      rc = errno;
      break;
    }
    bound = true;
  }
  close(dfd);  // releases the lock
  return rc;
}

int Identify(int fd, NsRef* ref) {
  struct stat st;
  if (fstat(fd, &st) < 0) return errno;
  ref->dev = st.st_dev;
  ref->ino = st.st_ino;
  return 0;
}
}  // namespace

NsRef::~NsRef() {
  if (fd >= 0) close(fd);
}

NsPtr NsFromJs(Napi::Value v, const char* field) {
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  if (!v.IsExternal() || !v.As<Napi::External<NsPtr>>().CheckTypeTag(&kNsTag))
    ArgError(v.Env(), true, field,
             "must be a namespace handle made by this addon (use a Netns from Netns.create or Netns.open)");
  NsPtr ns = *v.As<Napi::External<NsPtr>>().Data();
  if (ns->closed) ArgError(v.Env(), false, field, "this namespace handle was closed; open the namespace again");
  return ns;
}

Napi::Value NsToJs(Napi::Env env, NsPtr ns) {
  auto ext = Napi::External<NsPtr>::New(env, new NsPtr(std::move(ns)), Finalize);
  ext.TypeTag(&kNsTag);
  return ext;
}

int EnterNetns(const NsRef& ns) {
  return setns(ns.fd, CLONE_NEWNET) < 0 ? errno : 0;
}

int CreateNetns(const std::string& path, NsPtr* out, std::string* syscall, bool* prepared,
                const std::function<int(std::string*)>& inside) {
  int rc = 0;
  if (!*prepared) {
    rc = PrepareRunDir(syscall);
    if (rc) return rc;
    *prepared = true;
  }
  int fd = open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) {
    *syscall = "open";
    return errno;
  }
  close(fd);
  if (unshare(CLONE_NEWNET) < 0) {
    *syscall = "unshare";
    rc = errno;
  } else if (inside && (rc = inside(syscall)) != 0) {
    // nothing is mounted yet: the namespace dies with the thread's next setns
  } else if (mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) < 0) {
    *syscall = "mount";
    rc = errno;
  }
  if (!rc) rc = OpenNetns(path, out, syscall);
  if (rc) {
    umount2(path.c_str(), MNT_DETACH);
    unlink(path.c_str());
  }
  return rc;
}

int DeleteNetns(const std::string& path, dev_t* dev, ino_t* ino, std::string* syscall) {
  *dev = 0;
  *ino = 0;
  struct stat st;
  if (stat(path.c_str(), &st) < 0) {
    if (errno == ENOENT) return 0;
    *syscall = "stat";
    return errno;
  }
  *dev = st.st_dev;
  *ino = st.st_ino;
  // Detach, so that a process still inside the namespace cannot keep the file busy. The loop
  // covers a file that was mounted more than once.
  while (umount2(path.c_str(), MNT_DETACH) == 0) {
  }
  for (int tries = 0;; tries++) {
    if (unlink(path.c_str()) == 0 || errno == ENOENT) return 0;
    if (errno != EBUSY || tries >= 50) {
      *syscall = "unlink";
      return errno;
    }
    usleep(1000);
  }
}

int OpenNetns(const std::string& path, NsPtr* out, std::string* syscall) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *syscall = "open";
    return errno;
  }
  auto ns = std::make_shared<NsRef>();
  ns->fd = fd;
  ns->path = path;
  int rc = Identify(fd, ns.get());
  if (rc) {
    *syscall = "fstat";
    return rc;
  }
  // Make sure it really is a network namespace (setns would fail later with a vaguer error).
  int type = ioctl(fd, NS_GET_NSTYPE);
  if (type != CLONE_NEWNET) {
    *syscall = "ioctl(NS_GET_NSTYPE)";
    return type < 0 && errno != ENOTTY ? errno : EINVAL;
  }
  *out = std::move(ns);
  return 0;
}

}  // namespace nc

