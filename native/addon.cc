// Registers the addon's functions. Per-environment state (the worker) lives in the addon instance;
// there is no static mutable state.
#include <napi.h>

#include <memory>

#include "attr.h"
#include "iptc.h"
#include "lock.h"
#include "netns.h"
#include "nft.h"
#include "notify.h"
#include "worker.h"

namespace nc {

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports) : worker_(std::make_unique<Worker>(env)) {
    DefineAddon(exports, {InstanceMethod("submit", &Addon::Submit)});
    // Runtime-directory locks: plain file calls, done on the calling thread.
    exports.Set("lockFile", Napi::Function::New(env, LockFile, "lockFile"));
    exports.Set("lockHeld", Napi::Function::New(env, LockHeld, "lockHeld"));
    exports.Set("unlockFile", Napi::Function::New(env, UnlockFile, "unlockFile"));
    // sd_notify: one datagram to the service manager, on the calling thread (never blocks).
    exports.Set("sdNotify", Napi::Function::New(env, SdNotify, "sdNotify"));
    exports.Set("reserveNetns", Napi::Function::New(env, ReserveNetns, "reserveNetns"));
  }

 private:
  // submit(ops: object[], stopOnError: boolean): Promise<unknown[]>
  Napi::Value Submit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsArray()) ArgError(env, true, "ops", "submit expects an array of op objects");
    Napi::Array arr = info[0].As<Napi::Array>();
    auto job = std::make_unique<Job>(env);
    job->stopOnError = info[1].ToBoolean().Value();
    job->ops.resize(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr.Get(i);
      if (!v.IsObject()) ArgError(env, true, "ops[" + std::to_string(i) + "]", "each op must be an object such as { type: 'link.list' }");
      BuildOp(env, v.As<Napi::Object>(), job->ops[i]);
    }
    Napi::Promise promise = job->deferred.Promise();
    worker_->Submit(env, job.release());
    return promise;
  }

  // reserveNetns(path): a handle for the namespace a later netns.create op with `into` makes at
  // `path`. Ops for it can be queued at once; a job that needs it runs only once it exists.
  static Napi::Value ReserveNetns(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) ArgError(env, true, "path", "reserveNetns expects the namespace's path");
    auto ns = std::make_shared<NsRef>();
    ns->reserved = true;
    ns->path = NetnsPathArg(env, info[0].As<Napi::String>().Utf8Value());
    return NsToJs(env, ns);
  }

  static std::string NetnsPathArg(Napi::Env env, const std::string& path) {
    if (path.empty() || path.size() > 4096 || path.find('\0') != std::string::npos)
      ArgError(env, false, "path", "a namespace path must be 1 to 4096 bytes without NUL characters");
    return path;
  }

  // A per-namespace sysctl path (net/... under /proc/sys) and a value to write there.
  static std::string SysctlPathArg(Napi::Env env, const std::string& path, const std::string& field) {
    bool bad = path.empty() || path.rfind("net/", 0) != 0 || path.find("..") != std::string::npos ||
               path.find("//") != std::string::npos;
    for (unsigned char c : path) bad = bad || c < 0x20 || c == 0x7f;
    if (bad)
      ArgError(env, false, field,
               "'" + Echo(path) + "' is not a per-namespace sysctl path: use net/... without '..', '//' or control characters");
    return path;
  }
  static std::string SysctlValueArg(Napi::Env env, const std::string& value, const std::string& field) {
    if (value.find_first_of(std::string("\n\0", 2)) != std::string::npos)
      ArgError(env, false, field, "a sysctl value must be one line without NUL characters");
    return value;
  }

  static void BuildOp(Napi::Env env, const Napi::Object& o, Op& op) {
    std::string type = Str(o, "type");
    op.ns = NsFromJs(o.Get("netns"), "netns");
    auto is = [&](const char* prefix) { return type.rfind(prefix, 0) == 0; };
    if (is("link.")) {
      BuildLinkOp(env, type, o, op);
    } else if (is("addr.")) {
      BuildAddrOp(env, type, o, op);
    } else if (is("route.")) {
      BuildRouteOp(env, type, o, op);
    } else if (is("neigh.")) {
      BuildNeighOp(env, type, o, op);
    } else if (is("nft.")) {
      BuildNftOp(env, type, o, op);
    } else if (is("iptc.") || is("clusterip.")) {
      BuildIptcOp(env, type, o, op);
    } else if (type == "nsid.get") {
      BuildNsIdOp(o, op);
    } else if (type == "netns.create" || type == "netns.delete" || type == "netns.open") {
      op.kind = type == "netns.create"   ? OpKind::NetnsCreate
                : type == "netns.delete" ? OpKind::NetnsDelete
                                         : OpKind::NetnsOpen;
      op.path = NetnsPathArg(env, Str(o, "path"));
      op.label = "'" + Echo(op.path, 200) + "'";
      if (op.kind == OpKind::NetnsCreate && Has(o, "into")) {
        NsPtr into = NsFromJs(o.Get("into"), "into");
        if (!into || !into->reserved) ArgError(env, true, "into", "must be a handle from reserveNetns");
        if (into->claimed) ArgError(env, false, "into", "this reserved handle is already being made by another netns.create");
        if (into->path != op.path) ArgError(env, false, "into", "was reserved for '" + Echo(into->path, 200) + "', not '" + Echo(op.path, 200) + "'");
        into->claimed = true;
        op.into = into;
      }
      if (op.kind == OpKind::NetnsCreate && Has(o, "mark")) {
        op.alias = AliasStr(o, "mark", false);
        op.setAlias = true;
      }
      if (op.kind == OpKind::NetnsCreate && Has(o, "sysctls")) {
        Napi::Value sv = o.Get("sysctls");
        if (!sv.IsArray()) ArgError(env, true, "sysctls", "must be an array of { path, value }");
        Napi::Array arr = sv.As<Napi::Array>();
        for (uint32_t i = 0; i < arr.Length(); i++) {
          std::string field = "sysctls[" + std::to_string(i) + "]";
          if (!arr.Get(i).IsObject()) ArgError(env, true, field, "must be an object { path, value }");
          Napi::Object e = arr.Get(i).As<Napi::Object>();
          std::string path = SysctlPathArg(env, Str(e, "path"), field + ".path");
          op.sysctls.emplace_back(path, SysctlValueArg(env, Str(e, "value"), field + ".value"));
        }
      }
    } else if (type == "netns.release") {
      if (!op.ns) ArgError(env, true, "netns", "netns.release needs a namespace handle");
      op.kind = OpKind::NetnsRelease;
      op.ns->closed = true;  // set here, on the JS thread, so later ops are refused at once
    } else if (type == "sysctl.read" || type == "sysctl.write") {
      op.kind = type == "sysctl.read" ? OpKind::SysctlRead : OpKind::SysctlWrite;
      op.path = SysctlPathArg(env, Str(o, "path"), "path");
      if (op.kind == OpKind::SysctlWrite) op.value = SysctlValueArg(env, Str(o, "value"), "value");
      op.label = "'" + op.path + "'";
    } else {
      ArgError(env, false, "type", "unknown op type '" + Echo(type) + "'");
    }
  }

  std::unique_ptr<Worker> worker_;
};

}  // namespace nc

using nc::Addon;
NODE_API_ADDON(Addon)
