// sd_notify(3) without libsystemd: one datagram to the service manager's notification socket.
#pragma once

#include <napi.h>

namespace nc {

Napi::Value SdNotify(const Napi::CallbackInfo& info);

}  // namespace nc
