#include "errors.h"

#include <errno.h>
#include <string.h>

namespace nc {

std::string ErrnoName(int errnum) {
  const char* name = strerrorname_np(errnum);
  return name ? name : "E" + std::to_string(errnum);
}

Napi::Error KernelError(Napi::Env env, int errnum, const std::string& syscall,
                        const std::string& object, const std::string& extack) {
  std::string code = ErrnoName(errnum);
  std::string msg = code + ": " + strerror(errnum);
  if (!syscall.empty()) msg += ", " + syscall;
  if (!object.empty()) msg += " " + object;
  if (!extack.empty()) msg += " (kernel: " + extack + ")";
  if (errnum == EPERM || errnum == EACCES)
    msg += " — this needs root, or CAP_NET_ADMIN and CAP_SYS_ADMIN";
  Napi::Error e = Napi::Error::New(env, msg);
  Napi::Object o = e.Value();
  o.Set("code", code);
  o.Set("errno", -errnum);
  if (!syscall.empty()) o.Set("syscall", syscall);
  if (!object.empty()) o.Set("object", object);
  if (!extack.empty()) o.Set("extack", extack);
  return e;
}

}  // namespace nc
