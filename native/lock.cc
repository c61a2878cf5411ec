// Advisory locks for the runtime directory: one controller per cluster name. Open-file-description
// locks (fcntl F_OFD_SETLK): the kernel drops the lock when the holder dies, however it dies, so a
// crashed controller never blocks the next one; closing some other fd of the file does not drop it
// (as it would a POSIX lock); and a probe (F_OFD_GETLK) only asks, it never takes the lock, so a
// probe can never make a concurrent lockFile fail. Plain file operations on the calling thread;
// nothing here changes namespace.
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "attr.h"
#include "errors.h"

namespace nc {

namespace {

std::string PathArg(const Napi::CallbackInfo& info, const char* fn) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) ArgError(env, true, "path", std::string(fn) + " expects the lock file's path as a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  if (path.empty() || path.find('\0') != std::string::npos)
    ArgError(env, false, "path", "a lock file path must be non-empty and contain no NUL characters");
  return path;
}

struct flock WholeFile(short type) {
  struct flock fl = {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;  // to the end, however long the file grows
  fl.l_pid = 0;  // must be 0 for OFD locks
  return fl;
}

void Refuse(Napi::Env env, int fd, int e, const char* sys, const std::string& path) {
  if (fd >= 0) close(fd);
  throw KernelError(env, e, sys, "'" + Echo(path, 200) + "'", "");
}

}  // namespace

// lockFile(path, content?): number — an fd holding an exclusive OFD lock on path (created 0600),
// or throws (EAGAIN/EWOULDBLOCK when another open file description holds it). Once locked, the
// file is truncated and `content` written to it.
Napi::Value LockFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = PathArg(info, "lockFile");
  std::string content;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    if (!info[1].IsString()) ArgError(env, true, "content", "what lockFile writes into the lock file must be a string");
    content = info[1].As<Napi::String>().Utf8Value();
  }
  for (;;) {
    // O_NONBLOCK: a FIFO planted at the path must not hang the caller; S_ISREG is checked below.
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
    if (fd < 0) Refuse(env, -1, errno, "open", path);
    struct stat a;
    if (fstat(fd, &a) < 0) Refuse(env, fd, errno, "fstat", path);
    if (!S_ISREG(a.st_mode)) Refuse(env, fd, EINVAL, "open", path + " (not a regular file)");
    struct flock fl = WholeFile(F_WRLCK);
    if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
      int e = errno == EACCES ? EAGAIN : errno;  // both mean "held by someone else"
      Refuse(env, fd, e, "fcntl(F_OFD_SETLK)", path);
    }
    // The holder unlinks the file when it is done: if that happened between our open and the lock,
    // we locked a file nobody else will ever see. Only a lock on the file at `path` counts.
    struct stat b;
    if (stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
      if (ftruncate(fd, 0) < 0) Refuse(env, fd, errno, "ftruncate", path);
      size_t done = 0;
      while (done < content.size()) {
        ssize_t n = pwrite(fd, content.data() + done, content.size() - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) Refuse(env, fd, errno, "write", path);
        done += static_cast<size_t>(n);
      }
      return Napi::Number::New(env, fd);
    }
    close(fd);
  }
}

// lockHeld(path): boolean — whether some open file description holds a lock on path. Only asks
// (F_OFD_GETLK): never takes the lock, never creates the file.
Napi::Value LockHeld(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = PathArg(info, "lockHeld");
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    Refuse(env, -1, errno, "open", path);
  }
  struct flock fl = WholeFile(F_WRLCK);
  if (fcntl(fd, F_OFD_GETLK, &fl) < 0) Refuse(env, fd, errno, "fcntl(F_OFD_GETLK)", path);
  close(fd);
  return Napi::Boolean::New(env, fl.l_type != F_UNLCK);
}

// unlockFile(fd): releases a lock taken with lockFile.
Napi::Value UnlockFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) ArgError(env, true, "fd", "unlockFile expects the number lockFile returned");
  double d = info[0].As<Napi::Number>().DoubleValue();
  if (!(d >= 3 && d <= 2147483647.0) || static_cast<double>(static_cast<int>(d)) != d)
    ArgError(env, false, "fd", "unlockFile expects the number lockFile returned (an fd above 2)");
  close(static_cast<int>(d));
  return env.Undefined();
}

}  // namespace nc
