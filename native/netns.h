// Persistent named network namespaces, made and removed the way `ip netns add/del` does, and the
// thread-local namespace switching the worker uses. Everything here that changes the calling
// thread's namespace is only ever called on the addon's own worker thread.
#pragma once

#include <napi.h>

#include <functional>
#include <string>

#include "op.h"

namespace nc {

// The handle a JS Netns object holds (a Napi::External around an NsPtr). nullptr for undefined.
// Handles are type-tagged: anything else (a forged or foreign External, a plain object) is refused
// with an ERR_INVALID_ARG_TYPE error naming `field`.
NsPtr NsFromJs(Napi::Value v, const char* field = "netns");
Napi::Value NsToJs(Napi::Env env, NsPtr ns);

// Worker-thread only. Creates /run/netns/<name> (like `ip netns add`): the calling thread ends up
// inside the new namespace; *out receives an fd-backed reference to it. Returns 0 or errno, with
// *syscall naming the failed step.
// `prepared` skips the /run/netns checks when the caller already made them in this job.
// `inside` (may be empty) runs in the new namespace after unshare and before the bind mount makes
// it visible under `path`; an error from it (errno, with *syscall set) undoes everything.
int CreateNetns(const std::string& path, NsPtr* out, std::string* syscall, bool* prepared,
                const std::function<int(std::string*)>& inside);
// Unmounts (detached) and unlinks a namespace file; a missing one is not an error. On success
// *ino/*dev hold the identity of what was removed (0 if nothing), so cached sockets can be dropped.
int DeleteNetns(const std::string& path, dev_t* dev, ino_t* ino, std::string* syscall);
// Opens a namespace file (any path naming a network namespace: /run/netns/x, /proc/PID/ns/net).
int OpenNetns(const std::string& path, NsPtr* out, std::string* syscall);
// Moves the calling thread into `ns` with setns(2).
int EnterNetns(const NsRef& ns);

}  // namespace nc
