// Advisory locks (flock) for the runtime directory: one controller per cluster name. The kernel
// drops the lock when the holder dies, however it dies, so a crashed controller never blocks the
// next one. Plain file operations on the calling thread; nothing here changes namespace.
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errors.h"

namespace nc {

// lockFile(path): number — an fd holding an exclusive lock on path (created 0600), or throws
// (EWOULDBLOCK when another process holds it).
Napi::Value LockFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "lockFile expects a path");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  for (;;) {
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) throw KernelError(env, errno, "open", "'" + path + "'", "");
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
      int e = errno;
      close(fd);
      throw KernelError(env, e, "flock", "'" + path + "'", "");
    }
    // The holder unlinks the file when it is done: if that happened between our open and flock,
    // we locked a file nobody else will ever see. Only a lock on the file at `path` counts.
    struct stat a, b;
    if (fstat(fd, &a) == 0 && stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
      return Napi::Number::New(env, fd);
    close(fd);
  }
}

// lockHeld(path): boolean — whether some process holds the lock (probes with a shared lock).
Napi::Value LockHeld(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    throw KernelError(env, errno, "open", "'" + path + "'", "");
  }
  bool held = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
  close(fd);
  return Napi::Boolean::New(env, held);
}

// unlockFile(fd): releases a lock taken with lockFile.
Napi::Value UnlockFile(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd > 2) close(fd);
  return info.Env().Undefined();
}

}  // namespace nc
