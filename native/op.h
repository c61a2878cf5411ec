// One unit of work for the addon's own thread: a netlink request (or nftables batch), a namespace
// operation or a sysctl access. Ops are built on the JS thread from plain objects, executed in order
// on the worker thread, and turned back into JS values on the JS thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace nc {

// A network namespace the addon can enter or open sockets in. `fd` is an O_CLOEXEC fd of the
// namespace file; the "home" namespace (the one the process started in) has fd == -1 until opened.
//
// A reserved handle (reserveNetns) names a namespace that a later netns.create op (`into`) makes:
// ops for it can be built and queued before it exists. `reserved`, `claimed` and `path` are set on
// the JS thread before any job uses the handle and never change; fd/dev/ino are written by the
// create on the worker's threads, and read only there (jobs run in order), so a job queued behind
// the create sees them filled, or the create failed and the fd is still -1.
struct NsRef {
  int fd = -1;
  dev_t dev = 0;
  ino_t ino = 0;
  bool home = false;
  bool closed = false;
  bool reserved = false;
  bool claimed = false;  // a netns.create op was built to fill this reserved handle
  std::string path;
  ~NsRef();
  // A reserved handle whose create has not (or not successfully) run.
  bool Unmade() const { return reserved && fd < 0; }
};
using NsPtr = std::shared_ptr<NsRef>;

// A u32 namespace fd (IFLA_NET_NS_FD, NETNSA_FD) of a reserved handle, filled in before sending.
struct NsFdPatch {
  NsPtr ns;
  size_t offset;  // byte offset of the u32 inside Op::msg
};

enum class OpKind {
  Netlink,       // one or more netlink messages sent on the namespace's socket
  NetnsCreate,   // like `ip netns add`
  NetnsDelete,   // like `ip netns del`, missing is not an error
  NetnsOpen,     // open a namespace file and return a handle
  NetnsRelease,  // drop cached sockets and close the handle's fd
  SysctlRead,
  SysctlWrite,
  Iptc,          // an iptables (libiptc) commit/list or a CLUSTERIP /proc access (iptc.h)
};

// How the replies of a netlink op become a JS value.
enum class Parse { None, Link, Links, Addrs, Routes, Neighs, NsId, NftRules, NftElems, NftTables, Iptc };

struct IptcReq;  // iptc.cc

// A u32 ifindex that must be filled in from an interface name before sending.
struct IfindexPatch {
  std::string name;
  size_t offset;  // byte offset of the u32 inside Op::msg
};

// Where a message of a multi-message op (an nftables batch) starts and what to call it in errors.
struct SubMsg {
  size_t offset;
  std::string label;
};

struct Op {
  OpKind kind = OpKind::Netlink;
  NsPtr ns;     // target namespace (home when the caller gave none)
  NsPtr keep;   // a namespace whose fd is referenced inside msg (IFLA_NET_NS_FD); kept open
  int protocol = 0;
  std::vector<uint8_t> msg;
  std::vector<IfindexPatch> patches;
  std::vector<NsFdPatch> nsPatches;
  std::vector<SubMsg> parts;  // empty: msg is a single netlink message
  bool dump = false;
  bool invalidatesNames = false;
  Parse parse = Parse::None;
  std::string syscall;  // e.g. "RTM_NEWLINK", "mount", "open"
  std::string label;    // e.g. "veth 'a' (peer 'b')"
  std::string path, value;
  // link.add: IFLA_IFALIAS for the new link (and its peer when in the same namespace). The kernel
  // ignores IFLA_IFALIAS in a create request, so the worker sets it by index once the create has
  // succeeded (never on a link that already existed under that name).
  bool setAlias = false, setPeerAlias = false;
  std::string alias, peerAlias;
  std::shared_ptr<IptcReq> iptc;  // OpKind::Iptc: the request, and its results
  // netns.create: sysctls (path under /proc/sys, value) written inside the new namespace before it
  // gets its name.
  std::vector<std::pair<std::string, std::string>> sysctls;
  // link.add: the new link's name, for kernels that do not echo a create (such as Linux 6.1).
  std::string linkName;
  // netns.create: the reserved handle the new namespace fills (and the op's result).
  NsPtr into;

  // Results, written by the worker.
  int err = 0;  // positive errno
  std::string errSyscall, errLabel, extack;
  std::vector<std::vector<uint8_t>> replies;
  std::string text;
  NsPtr outNs;
  bool skipped = false;
  bool* failFlag = nullptr;  // set to true when this op fails (the job's stop-on-error flag)

  void Fail(int e, const std::string& sys, const std::string& what, const std::string& ack = "") {
    if (err) return;  // the first failure of an op is the one to report
    err = e;
    errSyscall = sys;
    errLabel = what;
    extack = ack;
    if (failFlag) *failFlag = true;
  }
};

}  // namespace nc
