#include "sysctl.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

namespace nc {

namespace {
std::string Full(const std::string& path) { return "/proc/sys/" + path; }
}  // namespace

int ReadSysctl(const std::string& path, std::string* value, std::string* syscall) {
  *syscall = "open";
  int fd = open(Full(path).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  *syscall = "read";
  char buf[4096];
  value->clear();
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      return e;
    }
    if (n == 0) break;
    value->append(buf, static_cast<size_t>(n));
  }
  close(fd);
  while (!value->empty() && (value->back() == '\n' || value->back() == ' ')) value->pop_back();
  return 0;
}

int WriteSysctl(const std::string& path, const std::string& value, std::string* syscall) {
  *syscall = "open";
  int fd = open(Full(path).c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  *syscall = "write";
  std::string v = value + "\n";
  ssize_t n;
  do {
    n = write(fd, v.data(), v.size());
  } while (n < 0 && errno == EINTR);
  int e = n < 0 ? errno : 0;
  close(fd);
  return e;
}

}  // namespace nc
