// The addon's own thread. It is the only thread that ever calls setns/unshare: it opens netlink
// sockets inside namespaces (a socket stays bound to the namespace it was created in), caches them,
// and runs the ops of each job in order, pipelining consecutive netlink requests to one socket.
// Results go back to the JS thread through one thread-safe function.
#pragma once

#include <napi.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "nlsock.h"
#include "op.h"

namespace nc {

struct Job {
  std::vector<Op> ops;
  bool stopOnError = false;
  Napi::Promise::Deferred deferred;
  explicit Job(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

class Worker {
 public:
  explicit Worker(Napi::Env env);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // JS thread. Takes ownership of the job; its promise settles with one result per op.
  void Submit(Napi::Env env, Job* job);

 private:
  static void Complete(Napi::Env env, Napi::Function, Worker* self, Job* job);
  using Tsfn = Napi::TypedThreadSafeFunction<Worker, Job, &Worker::Complete>;

  void Run();
  void Execute(Job* job);
  void RunNetlink(Op& op, NlSocket** pending);
  void RunOther(Op& op);
  using CachedSocket = std::pair<std::tuple<dev_t, ino_t, int>, std::unique_ptr<NlSocket>>;
  static int CreateOne(Op& op, bool* prepared, std::vector<CachedSocket>* made, std::string* sys);
  void CreateParallel(Op* ops, size_t count, bool stopOnError);
  void RunLinkAddWithAlias(Op& op, NlSocket* sock);
  NlSocket* SocketFor(const NsPtr& ns, int protocol, int* err);
  int Enter(const NsPtr& ns);
  void GoHome();
  void Evict(dev_t dev, ino_t ino);

  Tsfn tsfn_;
  int pending_ = 0;  // JS thread only

  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job*> queue_;
  bool stop_ = false;

  // Worker thread only.
  NsPtr home_;
  dev_t curDev_ = 0;
  ino_t curIno_ = 0;
  bool broken_ = false;  // could not return to the home namespace: refuse all further work
  std::map<std::tuple<dev_t, ino_t, int>, std::unique_ptr<NlSocket>> sockets_;
  std::map<NlSocket*, std::map<std::string, uint32_t>> names_;  // per job
  bool runDirReady_ = false;                                      // per job: /run/netns checked
  bool stopOnError_ = false;                                      // per job
};

}  // namespace nc
