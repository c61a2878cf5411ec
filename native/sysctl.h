// Per-namespace sysctls (/proc/sys/net/...). /proc/sys/net resolves against the namespace of the
// thread that opens the file, so these run on the worker thread after it entered the namespace.
#pragma once

#include <string>

namespace nc {

// `path` is relative to /proc/sys, e.g. "net/ipv4/ip_forward". Returns 0 or errno, with *syscall
// naming the step that failed.
int ReadSysctl(const std::string& path, std::string* value, std::string* syscall);
int WriteSysctl(const std::string& path, const std::string& value, std::string* syscall);

}  // namespace nc
