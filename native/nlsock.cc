#include "nlsock.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "errors.h"

namespace nc {

namespace {
// Limits per sendmsg: below the socket's send buffer, and few enough acks that the receive queue
// (raised to kRcvBuf) never overflows, which would lose acks (ENOBUFS).
constexpr size_t kMaxBatchBytes = 192 * 1024;
constexpr size_t kMaxBatchMsgs = 512;
constexpr int kSndBuf = 1 << 20;
constexpr int kRcvBuf = 8 << 20;
constexpr size_t kRecvSize = 64 * 1024;
constexpr int kMaxDumpAttempts = 8;

std::string ExtAck(const struct nlmsghdr* nlh) {
  if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
  const auto* e = static_cast<const struct nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
  size_t off = sizeof(struct nlmsgerr);
  if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) off += e->msg.nlmsg_len - sizeof(struct nlmsghdr);
  size_t plen = mnl_nlmsg_get_payload_len(nlh);
  if (off >= plen) return "";
  const char* base = static_cast<const char*>(mnl_nlmsg_get_payload(nlh)) + off;
  int len = static_cast<int>(plen - off);
  std::string msg;
  const struct nlattr* a;
  for (a = reinterpret_cast<const struct nlattr*>(base); mnl_attr_ok(a, len); a = mnl_attr_next(a)) {
    len -= static_cast<int>(MNL_ALIGN(a->nla_len));
    if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
      msg = mnl_attr_get_str(a);
  }
  return msg;
}
}  // namespace

std::unique_ptr<NlSocket> NlSocket::Open(int protocol, int* err) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (fd < 0) {
    *err = errno;
    return nullptr;
  }
  int one = 1;
  // Best effort: older kernels lack extended acks; forcing buffers needs CAP_NET_ADMIN.
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &kSndBuf, sizeof(kSndBuf)) < 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kSndBuf, sizeof(kSndBuf));
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &kRcvBuf, sizeof(kRcvBuf)) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kRcvBuf, sizeof(kRcvBuf));
  struct sockaddr_nl sa = {};
  sa.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof(sa)) < 0) {
    *err = errno;
    close(fd);
    return nullptr;
  }
  auto s = std::unique_ptr<NlSocket>(new NlSocket(fd));
  s->in_.resize(kRecvSize);
  return s;
}

NlSocket::~NlSocket() {
  if (fd_ >= 0) close(fd_);
}

bool NlSocket::Stage(Op* op) {
  if (!staged_.empty() && (out_.size() + op->msg.size() > kMaxBatchBytes || staged_.size() >= kMaxBatchMsgs ||
                           batchStaged_ || !op->parts.empty()))
    return false;
  if (!op->parts.empty()) batchStaged_ = true;
  size_t base = out_.size();
  out_.insert(out_.end(), op->msg.begin(), op->msg.end());
  if (op->parts.empty()) {
    auto* nlh = reinterpret_cast<struct nlmsghdr*>(out_.data() + base);
    nlh->nlmsg_seq = seq_;
    nlh->nlmsg_flags |= NLM_F_ACK;
    staged_.push_back({op, seq_++, op->label, true});
  } else {
    for (const auto& p : op->parts) {
      auto* nlh = reinterpret_cast<struct nlmsghdr*>(out_.data() + base + p.offset);
      nlh->nlmsg_seq = seq_;
      staged_.push_back({op, seq_++, p.label, (nlh->nlmsg_flags & NLM_F_ACK) != 0});
    }
  }
  return true;
}

void NlSocket::Dispatch(const struct nlmsghdr* nlh, bool* done_dump, Op* dump_op) {
  if (dump_op) {
    if (nlh->nlmsg_seq != staged_.back().seq) return;
    // The kernel marks a dump whose data changed while it was being read: it may be inconsistent.
    if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) dumpIntr_ = true;
    if (nlh->nlmsg_type == NLMSG_DONE) {
      *done_dump = true;
    } else if (nlh->nlmsg_type == NLMSG_ERROR) {
      const auto* e = static_cast<const struct nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
      if (e->error) dump_op->Fail(-e->error, dump_op->syscall, dump_op->label, ExtAck(nlh));
      *done_dump = true;
    } else {
      const auto* p = reinterpret_cast<const uint8_t*>(nlh);
      dump_op->replies.emplace_back(p, p + nlh->nlmsg_len);
    }
    return;
  }
  // Staged seqs are consecutive: map straight to the index.
  if (staged_.empty()) return;
  uint32_t first = staged_.front().seq;
  if (nlh->nlmsg_seq < first || nlh->nlmsg_seq - first >= staged_.size()) return;
  Staged& s = staged_[nlh->nlmsg_seq - first];
  if (nlh->nlmsg_type == NLMSG_ERROR) {
    const auto* e = static_cast<const struct nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
    s.acked = true;
    if (e->error) s.op->Fail(-e->error, s.op->syscall, s.label, ExtAck(nlh));
  } else {
    const auto* p = reinterpret_cast<const uint8_t*>(nlh);
    s.op->replies.emplace_back(p, p + nlh->nlmsg_len);
  }
}

bool NlSocket::ReadReplies(bool wait, bool* done_dump, Op* dump_op, int* err) {
  for (;;) {
    ssize_t n = recv(fd_, in_.data(), in_.size(), wait ? 0 : MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      *err = errno;
      return false;
    }
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const struct nlmsghdr*>(in_.data()); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      Dispatch(nlh, done_dump, dump_op);
    }
    if (dump_op && *done_dump) return true;
    if (dump_op) continue;  // a dump is continued by each recv: keep reading until DONE
    wait = false;
  }
}

void NlSocket::Flush() {
  if (staged_.empty()) return;
  const uint8_t* p = out_.data();
  size_t left = out_.size();
  int err = 0;
  const char* failed = nullptr;
  while (left > 0) {
    ssize_t n = send(fd_, p, left, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      failed = "sendmsg";  // nothing was sent
      break;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  bool dummy = false;
  if (!err && !ReadReplies(false, &dummy, nullptr, &err)) failed = "recvmsg";  // sent: the kernel may have applied it
  for (auto& s : staged_) {
    if (failed) {
      if (!s.acked) s.op->Fail(err, failed, s.label);
    } else if (s.wantAck && !s.acked && !s.op->err) {
      // rtnetlink and nfnetlink answer inside sendmsg: a missing ack means something is wrong.
      s.op->Fail(EIO, s.op->syscall, s.label + " (no acknowledgement from the kernel)");
    }
  }
  staged_.clear();
  out_.clear();
  batchStaged_ = false;
}

void NlSocket::Dump(Op* op) {
  Flush();
  for (int attempt = 1;; attempt++) {
    std::vector<uint8_t> msg = op->msg;
    auto* nlh = reinterpret_cast<struct nlmsghdr*>(msg.data());
    nlh->nlmsg_seq = seq_++;
    staged_.push_back({op, nlh->nlmsg_seq, op->label, false});
    int err = 0;
    bool done = false;
    dumpIntr_ = false;
    if (send(fd_, msg.data(), msg.size(), 0) < 0) {
      err = errno;
      op->Fail(err, "sendmsg", op->label);
    } else if (!ReadReplies(true, &done, op, &err)) {
      op->Fail(err, "recvmsg", op->label);
    }
    staged_.clear();
    if (op->err || !dumpIntr_) return;
    // Interrupted by concurrent changes: read it all again, a bounded number of times.
    op->replies.clear();
    if (attempt >= kMaxDumpAttempts) {
      op->Fail(EINTR, op->syscall,
               op->label + " (the kernel's dump was interrupted by concurrent changes " +
                   std::to_string(kMaxDumpAttempts) + " times in a row; try again when things are quieter)");
      return;
    }
  }
}

uint32_t NlSocket::IfIndex(const std::string& name, int* err, std::string* extack) {
  Flush();
  alignas(8) char buf[8192];
  struct nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_GETLINK;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  nlh->nlmsg_seq = seq_++;
  auto* ifm = static_cast<struct ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(struct ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  if (send(fd_, nlh, nlh->nlmsg_len, 0) < 0) {
    *err = errno;
    return 0;
  }
  uint32_t want = nlh->nlmsg_seq;
  for (;;) {
    ssize_t n = recv(fd_, in_.data(), in_.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return 0;
    }
    int len = static_cast<int>(n);
    for (auto* r = reinterpret_cast<const struct nlmsghdr*>(in_.data()); mnl_nlmsg_ok(r, len);
         r = mnl_nlmsg_next(r, &len)) {
      if (r->nlmsg_seq != want) continue;
      if (r->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const struct nlmsgerr*>(mnl_nlmsg_get_payload(r));
        *err = e->error ? -e->error : ENODEV;
        *extack = ExtAck(r);
        return 0;
      }
      if (r->nlmsg_type == RTM_NEWLINK) {
        const auto* ifi = static_cast<const struct ifinfomsg*>(mnl_nlmsg_get_payload(r));
        return static_cast<uint32_t>(ifi->ifi_index);
      }
    }
  }
}

}  // namespace nc
