// The one place where native failures become JS errors.
#pragma once

#include <napi.h>

#include <string>

namespace nc {

// Builds an Error shaped like Node's SystemError:
//   EEXIST: File exists, RTM_NEWLINK veth 'a' — kernel: "..."
// with .code (errno name), .errno (negative, as Node does), .syscall, .object and .extack.
Napi::Error KernelError(Napi::Env env, int errnum, const std::string& syscall,
                        const std::string& object, const std::string& extack);

// The symbolic name of an errno value ("EEXIST"), or "E<number>" when unknown.
std::string ErrnoName(int errnum);

}  // namespace nc
