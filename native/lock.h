// Open-file-description locks for the runtime directory (see lock.cc).
#pragma once

#include <napi.h>

namespace nc {

Napi::Value LockFile(const Napi::CallbackInfo& info);
Napi::Value LockHeld(const Napi::CallbackInfo& info);
Napi::Value UnlockFile(const Napi::CallbackInfo& info);

}  // namespace nc
