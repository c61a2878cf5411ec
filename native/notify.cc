// The service manager's notification protocol (sd_notify(3)), without libsystemd: one datagram of
// newline-separated KEY=VALUE assignments to the AF_UNIX socket named by $NOTIFY_SOCKET. A path
// starting with '/' is a file-system socket; one starting with '@' is in the abstract namespace
// (the '@' becomes a NUL byte, and the address length counts only the bytes used). A plain file
// call on the calling thread: it does not block (MSG_DONTWAIT) and changes no namespace.
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>

#include "attr.h"
#include "errors.h"

namespace nc {

// sdNotify(socketPath: string, message: string): void — throws a KernelError (code, syscall
// 'socket'/'sendto', object the socket path) when the datagram cannot be sent.
Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) ArgError(env, true, "socketPath", "sdNotify expects $NOTIFY_SOCKET (a path or @abstract name) as a string");
  if (!info[1].IsString()) ArgError(env, true, "message", "sdNotify expects the message (KEY=VALUE lines) as a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::string msg = info[1].As<Napi::String>().Utf8Value();

  struct sockaddr_un sa = {};
  sa.sun_family = AF_UNIX;
  if (path.size() < 2 || (path[0] != '/' && path[0] != '@') || path.size() > sizeof(sa.sun_path) ||
      (path[0] == '/' && path.size() == sizeof(sa.sun_path)) || path.find('\0') != std::string::npos)
    ArgError(env, false, "socketPath",
             "'" + Echo(path) + "' is not a notification socket: give an absolute path or an @abstract name of at most " +
                 std::to_string(sizeof(sa.sun_path) - 1) + " bytes");
  if (msg.empty() || msg.find('\0') != std::string::npos)
    ArgError(env, false, "message", "a notification is one or more KEY=VALUE lines without NUL characters");
  memcpy(sa.sun_path, path.data(), path.size());
  socklen_t len = offsetof(struct sockaddr_un, sun_path) + path.size();
  if (path[0] == '@') {
    sa.sun_path[0] = '\0';  // abstract: exactly path.size() bytes, no terminator
  } else {
    len += 1;  // the terminating NUL of a file-system path
  }

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw KernelError(env, errno, "socket", "'" + Echo(path, 200) + "'", "");
  ssize_t n;
  do {
    n = sendto(fd, msg.data(), msg.size(), MSG_DONTWAIT | MSG_NOSIGNAL, reinterpret_cast<struct sockaddr*>(&sa), len);
  } while (n < 0 && errno == EINTR);
  int e = errno;
  close(fd);
  if (n < 0) throw KernelError(env, e, "sendto", "'" + Echo(path, 200) + "'", "");
  return env.Undefined();
}

}  // namespace nc
