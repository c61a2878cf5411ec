// A netlink socket bound inside one namespace, with pipelined request/ack handling.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "op.h"

namespace nc {

class NlSocket {
 public:
  // Opens a socket of `protocol` in the calling thread's current network namespace.
  // Returns nullptr and sets *err (positive errno) on failure.
  static std::unique_ptr<NlSocket> Open(int protocol, int* err);
  ~NlSocket();
  NlSocket(const NlSocket&) = delete;
  NlSocket& operator=(const NlSocket&) = delete;

  // Sends the messages of every op in one sendmsg (they are already laid out by the caller, see
  // Stage) and collects each message's ack. The kernel handles rtnetlink and nfnetlink requests
  // synchronously inside sendmsg, so every reply is queued by the time it returns.
  void Flush();
  // Appends op's message(s) to the pending buffer, numbering them. Returns false if the op would not
  // fit, or if either it or what is staged is an nfnetlink batch, in which case the caller flushes
  // first: nfnetlink handles one batch per sendmsg and ignores whatever follows its end (no acks).
  bool Stage(Op* op);
  size_t staged() const { return staged_.size(); }
  // Runs a dump request (NLM_F_DUMP) to completion. Flushes pending requests first. A dump the
  // kernel flags NLM_F_DUMP_INTR (changed while being read) is run again, up to 8 times, then fails
  // with EINTR.
  void Dump(Op* op);
  // Looks up an interface index by name with RTM_GETLINK; 0 with *err set when it fails.
  uint32_t IfIndex(const std::string& name, int* err, std::string* extack);

 private:
  explicit NlSocket(int fd) : fd_(fd) {}
  struct Staged {
    Op* op;
    uint32_t seq;
    std::string label;
    bool wantAck;
    bool acked = false;
  };
  // Reads whatever is queued (without blocking when `wait` is false) and dispatches it.
  // Returns false on a socket error (stored in *err).
  bool ReadReplies(bool wait, bool* done_dump, Op* dump_op, int* err);
  void Dispatch(const struct nlmsghdr* nlh, bool* done_dump, Op* dump_op);

  int fd_;
  uint32_t seq_ = 1;
  std::vector<uint8_t> out_;
  std::vector<Staged> staged_;
  std::vector<uint8_t> in_;
  bool dumpIntr_ = false;
  bool batchStaged_ = false;  // an op with parts (an nfnetlink batch) is staged: it ends the send
};

}  // namespace nc
