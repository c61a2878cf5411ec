#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>

#include "attr.h"
#include "errors.h"
#include "iptc.h"
#include "netns.h"
#include "nft.h"
#include "sysctl.h"

namespace nc {

Worker::Worker(Napi::Env env) {
  tsfn_ = Tsfn::New(env, "netns-cluster", 0, 1, this);
  tsfn_.Unref(env);
}

Worker::~Worker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (Job* j : queue_) delete j;
  queue_.clear();
  tsfn_.Release();
}

void Worker::Submit(Napi::Env env, Job* job) {
  if (pending_++ == 0) tsfn_.Ref(env);
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(job);
  }
  if (!thread_.joinable()) thread_ = std::thread(&Worker::Run, this);
  cv_.notify_one();
}

void Worker::Run() {
  // Remember the namespace this thread was born in: it returns there after every job.
  NsPtr home;
  std::string sys;
  if (OpenNetns("/proc/thread-self/ns/net", &home, &sys) == 0) {
    home->home = true;
    home_ = home;
    curDev_ = home->dev;
    curIno_ = home->ino;
  } else {
    broken_ = true;
  }
  for (;;) {
    Job* job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_) break;
      job = queue_.front();
      queue_.pop_front();
    }
    Execute(job);
    if (tsfn_.BlockingCall(job) != napi_ok) delete job;
  }
  sockets_.clear();
}

int Worker::Enter(const NsPtr& ns) {
  if (ns->Unmade()) return ENOENT;  // never mistake its unset identity for the current namespace
  if (ns->dev == curDev_ && ns->ino == curIno_) return 0;
  if (ns->fd < 0) return EBADF;
  int rc = EnterNetns(*ns);
  if (rc == 0) {
    curDev_ = ns->dev;
    curIno_ = ns->ino;
  }
  return rc;
}

void Worker::GoHome() {
  if (broken_ || (curDev_ == home_->dev && curIno_ == home_->ino)) return;
  if (Enter(home_) != 0) broken_ = true;  // never carry on in the wrong namespace
}

void Worker::Evict(dev_t dev, ino_t ino) {
  for (auto it = sockets_.begin(); it != sockets_.end();) {
    if (std::get<0>(it->first) == dev && std::get<1>(it->first) == ino) {
      names_.erase(it->second.get());
      it = sockets_.erase(it);
    } else {
      ++it;
    }
  }
}

NlSocket* Worker::SocketFor(const NsPtr& ns, int protocol, int* err) {
  if (ns->Unmade()) {
    *err = ENOENT;
    return nullptr;
  }
  auto key = std::make_tuple(ns->dev, ns->ino, protocol);
  auto it = sockets_.find(key);
  if (it != sockets_.end()) return it->second.get();
  if ((*err = Enter(ns)) != 0) return nullptr;
  auto sock = NlSocket::Open(protocol, err);
  if (!sock) return nullptr;
  NlSocket* raw = sock.get();
  sockets_[key] = std::move(sock);
  return raw;
}

void Worker::RunNetlink(Op& op, NlSocket** pending) {
  NsPtr ns = op.ns ? op.ns : home_;
  int err = 0;
  NlSocket* sock = SocketFor(ns, op.protocol, &err);
  if (!sock) {
    op.Fail(err, err == EBADF || err == ENOENT ? "setns" : "socket",
            ns->Unmade() ? op.label + " (its namespace '" + ns->path + "' was not made)" : op.label);
    return;
  }
  if (*pending && *pending != sock) {
    (*pending)->Flush();
    // The flush may have reported an earlier op's failure: with stopOnError, nothing more starts.
    if (stopOnError_ && op.failFlag && *op.failFlag) {
      *pending = nullptr;
      op.skipped = true;
      return;
    }
  }
  *pending = nullptr;
  for (const auto& p : op.nsPatches) {
    if (p.ns->Unmade()) {
      op.Fail(ENOENT, op.syscall, op.label + " (namespace '" + p.ns->path + "' was not made)");
      return;
    }
    uint32_t fd = static_cast<uint32_t>(p.ns->fd);
    std::memcpy(op.msg.data() + p.offset, &fd, sizeof(fd));
  }
  // Link names are looked up on the namespace's rtnetlink socket (an nftables rule may name a
  // link: its fwd target), after what is staged there (a link made earlier in the job).
  NlSocket* linkSock = sock;
  if (!op.patches.empty() && op.protocol != NETLINK_ROUTE) {
    linkSock = SocketFor(ns, NETLINK_ROUTE, &err);
    if (!linkSock) {
      op.Fail(err, "socket", op.label);
      return;
    }
  }
  auto& names = names_[linkSock];
  for (const auto& p : op.patches) {
    auto it = names.find(p.name);
    uint32_t index;
    if (it != names.end()) {
      index = it->second;
    } else {
      std::string extack;
      index = linkSock->IfIndex(p.name, &err, &extack);
      if (!index) {
        op.Fail(err, "RTM_GETLINK", "'" + p.name + "' (needed by " + op.syscall + " " + op.label + ")",
                extack);
        return;
      }
      names[p.name] = index;
    }
    std::memcpy(op.msg.data() + p.offset, &index, sizeof(index));
  }
  if (op.dump) {
    sock->Dump(&op);
    return;
  }
  if (op.setAlias || op.setPeerAlias) {
    RunLinkAddWithAlias(op, sock);
    return;
  }
  if (!sock->Stage(&op)) {
    sock->Flush();
    sock->Stage(&op);
  }
  *pending = sock;
  if (op.invalidatesNames) names.clear();
}

// link.add with an alias: create (echoed, so the new link's index is known), then set the alias on
// that index. Never after a failed create: it must not mark a link that was already there.
void Worker::RunLinkAddWithAlias(Op& op, NlSocket* sock) {
  sock->Stage(&op);
  sock->Flush();
  if (op.err) return;
  uint32_t index = 0, peerIndex = 0;
  if (!EchoedLink(op, &index, &peerIndex)) {
    // Older kernels (6.1 among them) ignore NLM_F_ECHO on RTM_NEWLINK. The create succeeded
    // with NLM_F_EXCL, so the name was free and is now the new link's: read it back by name at
    // once, on this thread, and mark it only if it has no alias yet (never one someone marked).
    Op get;
    get.syscall = "RTM_GETLINK";
    get.label = op.label;
    BuildGetByName(get, op.linkName);
    sock->Stage(&get);
    sock->Flush();
    if (get.err || !EchoedLink(get, &index, &peerIndex) || LinkHasAlias(get)) {
      op.Fail(EIO, op.syscall, op.label + " (created, but it could not be read back by name; its alias was not set)");
      return;
    }
  }
  op.syscall = "RTM_SETLINK";
  std::string created = op.label;
  if (op.setAlias) {
    op.label = created + " (setting its alias)";
    BuildAliasSet(op, index, op.alias);
    sock->Stage(&op);
    sock->Flush();
  }
  if (!op.err && op.setPeerAlias) {
    if (!peerIndex) {
      op.Fail(EIO, op.syscall, op.label + " (no peer index in the kernel's echo; the peer's alias was not set)");
      return;
    }
    op.label = created + " (setting the peer's alias)";
    BuildAliasSet(op, peerIndex, op.peerAlias);
    sock->Stage(&op);
    sock->Flush();
  }
}

// Creates one namespace for a netns.create op on the calling thread (which stays inside it). Runs
// the op's sysctls and its mark inside the new namespace before it gets its name; the socket
// that set the mark goes to *made (the caller caches it). Touches no Worker state, so two
// threads can run it at once.
int Worker::CreateOne(Op& op, bool* prepared, std::vector<CachedSocket>* made, std::string* sys) {
  std::function<int(std::string*)> inside;
  if (op.setAlias || !op.sysctls.empty()) {
    inside = [&](std::string* s) -> int {
      for (const auto& kv : op.sysctls) {
        int rc = WriteSysctl(kv.first, kv.second, s);
        if (rc) {
          *s += " /proc/sys/" + kv.first;
          return rc;
        }
      }
      if (!op.setAlias) return 0;
      // Mark the new namespace's lo (ifindex 1) before it gets its name: a named namespace made
      // with a mark is never visible without it. The socket is kept, as for any namespace.
      struct stat st;
      if (stat("/proc/thread-self/ns/net", &st) < 0) {
        *s = "stat";
        return errno;
      }
      int err = 0;
      auto sock = NlSocket::Open(NETLINK_ROUTE, &err);
      if (!sock) {
        *s = "socket";
        return err;
      }
      Op set;
      set.syscall = "RTM_SETLINK";
      set.label = "lo (the mark of " + op.label + ")";
      BuildAliasSet(set, 1, op.alias);
      sock->Stage(&set);
      sock->Flush();
      if (set.err) {
        *s = set.errSyscall;
        return set.err;
      }
      made->emplace_back(std::make_tuple(st.st_dev, st.st_ino, static_cast<int>(NETLINK_ROUTE)), std::move(sock));
      return 0;
    };
  }
  int rc = CreateNetns(op.path, &op.outNs, sys, prepared, inside);
  if (rc) {
    made->clear();  // a cached socket would keep the dead namespace alive
    return rc;
  }
  if (op.into) {
    // The reserved handle takes the new namespace's file (this op's result is that handle).
    op.into->fd = op.outNs->fd;
    op.into->dev = op.outNs->dev;
    op.into->ino = op.outNs->ino;
    op.outNs->fd = -1;
    op.outNs = op.into;
  }
  return 0;
}

// A run of netns.create ops on two threads: this one and a helper started for the run (both the
// addon's own; Node's threads never change namespace). Namespace creation is mostly the kernel's
// per-namespace setup, which runs in parallel on two cores. Each thread stays in the last namespace
// it made; the helper ends with the run. With stopOnError, after a failure neither starts another.
void Worker::CreateParallel(Op* ops, size_t count, bool stopOnError) {
  std::vector<CachedSocket> made[2];
  std::vector<int> rcs(count, 0);
  std::vector<std::string> syscalls(count);
  std::atomic<bool> failed{false};
  auto run = [&](size_t t) {
    for (size_t i = t; i < count; i += 2) {
      if (stopOnError && failed.load()) {
        ops[i].skipped = true;
        continue;
      }
      bool prepared = true;  // /run/netns was prepared by the job's first netns.create
      std::vector<CachedSocket> mine;
      rcs[i] = CreateOne(ops[i], &prepared, &mine, &syscalls[i]);
      for (auto& m : mine) made[t].push_back(std::move(m));
      if (rcs[i]) failed.store(true);
    }
  };
  std::thread helper(run, 1);
  run(0);
  helper.join();
  // Back on this thread alone: results (Fail also raises the job's stop flag) and the socket cache.
  for (size_t i = 0; i < count; i++)
    if (rcs[i]) ops[i].Fail(rcs[i], syscalls[i], ops[i].label);
  for (auto& list : made)
    for (auto& m : list) sockets_[m.first] = std::move(m.second);
  curDev_ = 0;  // this thread is in the last namespace it made: force a setns home
  curIno_ = 0;
}

void Worker::RunOther(Op& op) {
  NsPtr ns = op.ns ? op.ns : home_;
  int rc = 0;
  std::string sys;
  switch (op.kind) {
    case OpKind::NetnsCreate: {
      std::vector<CachedSocket> made;
      rc = CreateOne(op, &runDirReady_, &made, &sys);
      for (auto& m : made) sockets_[m.first] = std::move(m.second);
      if (rc == 0) {
        curDev_ = op.outNs->dev;  // unshare left this thread inside the new namespace
        curIno_ = op.outNs->ino;
      } else {
        curDev_ = 0;  // unknown: force a setns home
        curIno_ = 0;
      }
      break;
    }
    case OpKind::NetnsDelete: {
      dev_t dev;
      ino_t ino;
      struct stat st;
      if (stat(op.path.c_str(), &st) == 0) Evict(st.st_dev, st.st_ino);
      rc = DeleteNetns(op.path, &dev, &ino, &sys);
      break;
    }
    case OpKind::NetnsOpen:
      rc = OpenNetns(op.path, &op.outNs, &sys);
      break;
    case OpKind::NetnsRelease:
      Evict(ns->dev, ns->ino);
      if (ns->fd >= 0 && !ns->home) {
        GoHome();
        close(ns->fd);
        ns->fd = -1;
      }
      break;
    case OpKind::SysctlRead:
    case OpKind::SysctlWrite:
      rc = Enter(ns);
      if (rc) {
        sys = "setns";
        break;
      }
      rc = op.kind == OpKind::SysctlRead ? ReadSysctl(op.path, &op.text, &sys)
                                          : WriteSysctl(op.path, op.value, &sys);
      break;
    case OpKind::Iptc:
      rc = Enter(ns);
      if (rc) {
        sys = "setns";
        break;
      }
      RunIptc(op);  // reports its own failures
      break;
    case OpKind::Netlink:
      break;
  }
  if (rc) op.Fail(rc, sys, op.label);
}

void Worker::Execute(Job* job) {
  // With stopOnError, requests already pipelined to the kernel when one fails still run (their
  // results are reported); nothing after that point is started.
  NlSocket* pending = nullptr;
  bool failed = false;
  auto flush = [&]() {
    if (pending) pending->Flush();
    pending = nullptr;
  };
  stopOnError_ = job->stopOnError;
  for (auto& op : job->ops) op.failFlag = &failed;
  // A job that needs a namespace an earlier job was to make (a reserved handle) and did not: with
  // stopOnError, none of it runs (the first such op fails), so nothing is half-built around it.
  if (job->stopOnError) {
    for (auto& op : job->ops) {
      if (op.kind == OpKind::NetnsCreate || op.kind == OpKind::NetnsDelete || op.kind == OpKind::NetnsOpen ||
          op.kind == OpKind::NetnsRelease)
        continue;
      const NsRef* unmade = op.ns && op.ns->Unmade() ? op.ns.get() : nullptr;
      for (const auto& p : op.nsPatches)
        if (!unmade && p.ns->Unmade()) unmade = p.ns.get();
      if (!unmade) continue;
      op.Fail(ENOENT, op.syscall.empty() ? "setns" : op.syscall, op.label + " (namespace '" + unmade->path + "' was not made)");
      break;
    }
  }
  for (size_t i = 0; i < job->ops.size(); i++) {
    Op& op = job->ops[i];
    if (broken_) {
      op.Fail(EIO, "setns",
              "(the addon's thread could not return to its own namespace; restart the process)");
      continue;
    }
    if (job->stopOnError && failed) {
      if (!op.err) op.skipped = true;  // (an op the check above failed reports its error)
      continue;
    }
    if (op.kind == OpKind::Netlink) {
      RunNetlink(op, &pending);
    } else if (op.kind == OpKind::NetnsCreate && runDirReady_ && i + 1 < job->ops.size() &&
               job->ops[i + 1].kind == OpKind::NetnsCreate) {
      // A run of namespace creations (after the first, which prepared /run/netns): two threads.
      flush();
      size_t j = i;
      while (j < job->ops.size() && job->ops[j].kind == OpKind::NetnsCreate) j++;
      CreateParallel(&job->ops[i], j - i, job->stopOnError);
      i = j - 1;
    } else {
      flush();
      RunOther(op);
    }
  }
  flush();
  for (auto& op : job->ops) op.failFlag = nullptr;
  names_.clear();
  runDirReady_ = false;
  GoHome();
}

void Worker::Complete(Napi::Env env, Napi::Function, Worker* self, Job* job) {
  std::unique_ptr<Job> owned(job);
  if (env == nullptr) return;
  if (--self->pending_ == 0) self->tsfn_.Unref(env);
  Napi::HandleScope scope(env);
  Napi::Array results = Napi::Array::New(env, job->ops.size());
  for (uint32_t i = 0; i < job->ops.size(); i++) {
    const Op& op = job->ops[i];
    Napi::Value v = env.Undefined();
    if (op.skipped) {
      v = env.Null();
    } else if (op.err) {
      v = KernelError(env, op.err, op.errSyscall, op.errLabel, op.extack).Value();
    } else if (op.outNs) {
      v = NsToJs(env, op.outNs);
    } else if (op.kind == OpKind::SysctlRead) {
      v = Napi::String::New(env, op.text);
    } else {
      switch (op.parse) {
        case Parse::Link: v = ParseLinks(env, op, true); break;
        case Parse::Links: v = ParseLinks(env, op, false); break;
        case Parse::Addrs: v = ParseAddrs(env, op); break;
        case Parse::Routes: v = ParseRoutes(env, op); break;
        case Parse::Neighs: v = ParseNeighs(env, op); break;
        case Parse::NsId: v = ParseNsId(env, op); break;
        case Parse::NftRules: v = ParseNftRules(env, op); break;
        case Parse::NftElems: v = ParseNftElems(env, op); break;
        case Parse::NftTables: v = ParseNftTables(env, op); break;
        case Parse::Iptc: v = ParseIptc(env, op); break;
        case Parse::None: break;
      }
    }
    results.Set(i, v);
  }
  job->deferred.Resolve(results);
}

}  // namespace nc
