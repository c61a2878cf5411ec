#include "iptc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <dlfcn.h>
#include <mutex>
#include <set>
#include <vector>

#include <libiptc/libiptc.h>
#include <linux/netfilter/xt_cluster.h>
#include <linux/netfilter/xt_comment.h>
#include <linux/netfilter/xt_tcpudp.h>
#include <linux/netfilter_ipv4/ipt_CLUSTERIP.h>

#include "attr.h"

namespace nc {

namespace {

// libip4tc is loaded when the first iptables op runs, not linked: the addon (and the nftables
// backend) must load on hosts without it.
#define NC_IPTC_FUNCS(X) \
  X(iptc_init) X(iptc_free) X(iptc_first_chain) X(iptc_next_chain) X(iptc_builtin) X(iptc_first_rule) \
  X(iptc_next_rule) X(iptc_get_target) X(iptc_delete_num_entry) X(iptc_is_chain) X(iptc_flush_entries) \
  X(iptc_delete_chain) X(iptc_create_chain) X(iptc_append_entry) X(iptc_insert_entry) X(iptc_commit) \
  X(iptc_strerror)

struct Iptc {
#define NC_DECL(f) decltype(&::f) f = nullptr;
  NC_IPTC_FUNCS(NC_DECL)
#undef NC_DECL
};

const Iptc* L = nullptr;
std::string loadError;

// Worker thread(s): once per process.
bool LoadIptc() {
  static std::once_flag once;
  std::call_once(once, [] {
    void* h = dlopen("libip4tc.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* e = dlerror();
      loadError = e ? e : "dlopen failed";
      return;
    }
    auto* lib = new Iptc();
#define NC_LOAD(f)                                                         \
  lib->f = reinterpret_cast<decltype(lib->f)>(dlsym(h, #f));               \
  if (!lib->f) {                                                           \
    loadError = std::string("libip4tc.so.2 has no ") + #f;                 \
    return;                                                                \
  }
    NC_IPTC_FUNCS(NC_LOAD)
#undef NC_LOAD
    L = lib;
  });
  return L != nullptr;
}

}  // namespace

struct IptRule {
  std::string in;       // -i
  uint32_t dst = 0;     // -d <dst>/32, network order; 0: any
  uint8_t proto = 0;    // -p
  int dport = -1;       // --dport (tcp/udp)
  bool cluster = false; // -m cluster
  xt_cluster_match_info clusterInfo{};
  std::string target;   // ACCEPT, DROP, RETURN, a chain, or CLUSTERIP
  ipt_clusterip_tgt_info cip{};
};

struct ListedRule {
  std::string target, comment;
  uint64_t packets = 0, bytes = 0;
  bool cluster = false;
  xt_cluster_match_info clusterInfo{};
  bool clusterip = false;
  std::vector<int> localNodes;
};

struct IptcReq {
  enum Kind { Commit, List, ClusteripNodes } kind = Commit;
  bool remove = false;
  std::string table, chain, mark, hint;
  // Extensions the rules use: {"match"|"target", name, what to call it in an error}.
  std::vector<std::array<std::string, 3>> needs;
  std::vector<std::pair<std::string, IptRule>> hooks;  // built-in chain, jump rule (target: chain)
  std::vector<IptRule> rules;
  // CLUSTERIP: the node numbers to answer for after the commit (or in 'clusterip.nodes').
  std::string vip;
  bool setNodes = false;
  std::vector<int> nodes;
  // Results.
  std::vector<ListedRule> listed;
  bool chainFound = false;
  std::vector<int> current;
};

namespace {

[[noreturn]] void Bad(Napi::Env env, const std::string& what, const std::string& msg) { ArgError(env, false, what, msg); }

uint32_t U32(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what, double max) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) Bad(env, what, std::string(key) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d < 0 || d > max || std::floor(d) != d) Bad(env, what, std::string(key) + " must be an integer 0.." + std::to_string(static_cast<uint64_t>(max)));
  return static_cast<uint32_t>(d);
}

// A chain or table name: x_tables' limit (XT_EXTENSION_MAXNAMELEN with the NUL).
std::string XtName(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what) {
  std::string s = Str(o, key);
  if (s.empty() || s.size() >= XT_EXTENSION_MAXNAMELEN || s.find('\0') != std::string::npos)
    Bad(env, what, std::string(key) + " must be 1.." + std::to_string(XT_EXTENSION_MAXNAMELEN - 1) + " bytes");
  return s;
}

uint32_t Ip4(Napi::Env env, const std::string& s, const std::string& what) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) Bad(env, what, "'" + Echo(s) + "' is not an IPv4 address");
  return a.s_addr;
}

IptRule BuildRule(Napi::Env env, const Napi::Object& o, const std::string& what) {
  IptRule r;
  if (Has(o, "in")) {
    r.in = Str(o, "in");
    if (r.in.empty() || r.in.size() >= IFNAMSIZ) Bad(env, what, "in must be an interface name of 1..15 bytes");
  }
  if (Has(o, "dst")) r.dst = Ip4(env, Str(o, "dst"), what + ".dst");
  if (Has(o, "proto")) {
    std::string p = Str(o, "proto");
    r.proto = p == "tcp" ? IPPROTO_TCP : p == "udp" ? IPPROTO_UDP : p == "icmp" ? IPPROTO_ICMP : 0;
    if (!r.proto) Bad(env, what, "proto must be 'tcp', 'udp' or 'icmp'");
  }
  if (Has(o, "dport")) {
    if (r.proto != IPPROTO_TCP && r.proto != IPPROTO_UDP) Bad(env, what, "dport needs proto 'tcp' or 'udp'");
    r.dport = static_cast<int>(U32(env, o, "dport", what, 65535));
  }
  if (Has(o, "cluster")) {
    Napi::Value cv = o.Get("cluster");
    if (!cv.IsObject()) Bad(env, what, "cluster must be { totalNodes, nodeMask, seed, invert? }");
    Napi::Object c = cv.As<Napi::Object>();
    r.cluster = true;
    r.clusterInfo.total_nodes = U32(env, c, "totalNodes", what + ".cluster", XT_CLUSTER_NODES_MAX);
    r.clusterInfo.node_mask = U32(env, c, "nodeMask", what + ".cluster", 4294967295.0);
    r.clusterInfo.hash_seed = U32(env, c, "seed", what + ".cluster", 4294967295.0);
    r.clusterInfo.flags = c.Get("invert").ToBoolean().Value() ? XT_CLUSTER_F_INV : 0;
  }
  Napi::Value t = o.Get("target");
  if (t.IsString()) {
    r.target = t.As<Napi::String>().Utf8Value();
    if (r.target.empty() || r.target.size() >= XT_EXTENSION_MAXNAMELEN || r.target == "CLUSTERIP")
      Bad(env, what, "target must be ACCEPT, DROP, RETURN or a chain name (CLUSTERIP is { clusterip: {...} })");
  } else if (t.IsObject() && t.As<Napi::Object>().Get("clusterip").IsObject()) {
    Napi::Object c = t.As<Napi::Object>().Get("clusterip").As<Napi::Object>();
    const std::string w = what + ".target.clusterip";
    r.target = "CLUSTERIP";
    r.cip.flags = CLUSTERIP_FLAG_NEW;
    std::string mac = Str(c, "clustermac");
    unsigned v[6];
    char end;
    if (sscanf(mac.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &end) != 6 || !(v[0] & 1))
      Bad(env, w, "clustermac must be a multicast MAC such as 01:00:5e:00:00:20");
    for (int i = 0; i < 6; i++) r.cip.clustermac[i] = static_cast<uint8_t>(v[i]);
    r.cip.num_total_nodes = static_cast<uint16_t>(U32(env, c, "totalNodes", w, CLUSTERIP_MAX_NODES));
    if (r.cip.num_total_nodes == 0) Bad(env, w, "totalNodes must be 1.." + std::to_string(CLUSTERIP_MAX_NODES));
    Napi::Value ln = c.Get("localNodes");
    if (!ln.IsArray()) Bad(env, w, "localNodes must be an array of node numbers");
    Napi::Array a = ln.As<Napi::Array>();
    if (a.Length() > CLUSTERIP_MAX_NODES) Bad(env, w, "at most " + std::to_string(CLUSTERIP_MAX_NODES) + " local nodes");
    r.cip.num_local_nodes = static_cast<uint16_t>(a.Length());
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value n = a.Get(i);
      double d = n.IsNumber() ? n.As<Napi::Number>().DoubleValue() : -1;
      if (d < 1 || d > r.cip.num_total_nodes || std::floor(d) != d) Bad(env, w, "localNodes must be node numbers 1..totalNodes");
      r.cip.local_nodes[i] = static_cast<uint16_t>(d);
    }
    std::string mode = Str(c, "hashMode");
    if (mode == "sourceip") r.cip.hash_mode = CLUSTERIP_HASHMODE_SIP;
    else if (mode == "sourceip-sourceport") r.cip.hash_mode = CLUSTERIP_HASHMODE_SIP_SPT;
    else if (mode == "sourceip-sourceport-destport") r.cip.hash_mode = CLUSTERIP_HASHMODE_SIP_SPT_DPT;
    else Bad(env, w, "hashMode must be sourceip, sourceip-sourceport or sourceip-sourceport-destport");
    r.cip.hash_initval = U32(env, c, "hashInit", w, 4294967295.0);
    if (!r.dst || r.in.empty()) Bad(env, what, "a CLUSTERIP rule needs dst (the VIP) and in (the interface)");
  } else {
    Bad(env, what, "target must be a string or { clusterip: {...} }");
  }
  return r;
}

constexpr size_t kMatchComment = XT_ALIGN(sizeof(xt_entry_match) + sizeof(xt_comment_info));
constexpr size_t kMatchCluster = XT_ALIGN(sizeof(xt_entry_match) + sizeof(xt_cluster_match_info));
constexpr size_t kMatchUdp = XT_ALIGN(sizeof(xt_entry_match) + sizeof(xt_udp));
constexpr size_t kMatchTcp = XT_ALIGN(sizeof(xt_entry_match) + sizeof(xt_tcp));
constexpr size_t kTargetStandard = XT_ALIGN(sizeof(xt_standard_target));
constexpr size_t kTargetClusterip = XT_ALIGN(sizeof(xt_entry_target) + sizeof(ipt_clusterip_tgt_info));

xt_entry_match* AddMatch(std::vector<uint8_t>& buf, size_t& off, size_t size, const char* name) {
  auto* m = reinterpret_cast<xt_entry_match*>(buf.data() + off);
  m->u.user.match_size = static_cast<uint16_t>(size);
  strncpy(m->u.user.name, name, sizeof(m->u.user.name) - 1);
  m->u.user.revision = 0;
  off += size;
  return m;
}

// One ipt_entry with its matches (tcp/udp, cluster, comment: the order iptables-save prints) and
// its target, as iptables itself lays it out.
std::vector<uint8_t> Entry(const IptRule& r, const std::string& comment, const xt_counters* counters) {
  size_t matches = kMatchComment + (r.cluster ? kMatchCluster : 0) +
                   (r.dport >= 0 ? (r.proto == IPPROTO_TCP ? kMatchTcp : kMatchUdp) : 0);
  bool cip = r.target == "CLUSTERIP";
  size_t tsize = cip ? kTargetClusterip : kTargetStandard;
  std::vector<uint8_t> buf(XT_ALIGN(sizeof(ipt_entry)) + matches + tsize, 0);
  auto* e = reinterpret_cast<ipt_entry*>(buf.data());
  if (r.dst) {
    e->ip.dst.s_addr = r.dst;
    e->ip.dmsk.s_addr = 0xffffffff;
  }
  if (!r.in.empty()) {
    strncpy(e->ip.iniface, r.in.c_str(), IFNAMSIZ - 1);
    memset(e->ip.iniface_mask, 0xff, r.in.size() + 1);
  }
  e->ip.proto = r.proto;
  e->target_offset = static_cast<uint16_t>(XT_ALIGN(sizeof(ipt_entry)) + matches);
  e->next_offset = static_cast<uint16_t>(buf.size());
  if (counters) e->counters = *counters;
  size_t off = XT_ALIGN(sizeof(ipt_entry));
  if (r.dport >= 0) {
    if (r.proto == IPPROTO_TCP) {
      auto* m = AddMatch(buf, off, kMatchTcp, "tcp");
      auto* t = reinterpret_cast<xt_tcp*>(m->data);
      t->spts[1] = 0xffff;
      t->dpts[0] = t->dpts[1] = static_cast<uint16_t>(r.dport);
    } else {
      auto* m = AddMatch(buf, off, kMatchUdp, "udp");
      auto* u = reinterpret_cast<xt_udp*>(m->data);
      u->spts[1] = 0xffff;
      u->dpts[0] = u->dpts[1] = static_cast<uint16_t>(r.dport);
    }
  }
  if (r.cluster) {
    auto* m = AddMatch(buf, off, kMatchCluster, "cluster");
    memcpy(m->data, &r.clusterInfo, sizeof(r.clusterInfo));
  }
  auto* cm = AddMatch(buf, off, kMatchComment, "comment");
  strncpy(reinterpret_cast<xt_comment_info*>(cm->data)->comment, comment.c_str(), XT_MAX_COMMENT_LEN - 1);
  auto* t = reinterpret_cast<xt_entry_target*>(buf.data() + off);
  t->u.user.target_size = static_cast<uint16_t>(tsize);
  strncpy(t->u.user.name, r.target.c_str(), sizeof(t->u.user.name) - 1);
  if (cip) memcpy(t->data, &r.cip, sizeof(r.cip));
  return buf;
}

// What a rule carries that the library reads back: its comment, a cluster match, CLUSTERIP's nodes.
ListedRule Read(const ipt_entry* e, xtc_handle* h) {
  ListedRule l;
  const char* t = L->iptc_get_target(e, h);
  l.target = t ? t : "";
  l.packets = e->counters.pcnt;
  l.bytes = e->counters.bcnt;
  for (size_t off = sizeof(ipt_entry); off < e->target_offset;) {
    auto* m = reinterpret_cast<const xt_entry_match*>(reinterpret_cast<const uint8_t*>(e) + off);
    if (m->u.match_size < sizeof(xt_entry_match)) break;
    if (strcmp(m->u.user.name, "comment") == 0) {
      auto* c = reinterpret_cast<const xt_comment_info*>(m->data);
      l.comment.assign(c->comment, strnlen(c->comment, XT_MAX_COMMENT_LEN));
    } else if (strcmp(m->u.user.name, "cluster") == 0) {
      l.cluster = true;
      memcpy(&l.clusterInfo, m->data, sizeof(l.clusterInfo));
    }
    off += m->u.match_size;
  }
  if (l.target == "CLUSTERIP") {
    auto* tg = reinterpret_cast<const xt_entry_target*>(reinterpret_cast<const uint8_t*>(e) + e->target_offset);
    ipt_clusterip_tgt_info info;
    memcpy(&info, tg->data, sizeof(info));
    l.clusterip = true;
    for (int i = 0; i < info.num_local_nodes && i < CLUSTERIP_MAX_NODES; i++) l.localNodes.push_back(info.local_nodes[i]);
  }
  return l;
}

struct Handle {
  xtc_handle* h = nullptr;
  ~Handle() {
    if (h) L->iptc_free(h);
  }
};

std::string Where(const IptcReq& q) { return "chain '" + q.chain + "' of table '" + q.table + "'"; }

bool Listed(const std::string& file, const std::string& name) {
  int fd = open(("/proc/thread-self/net/" + file).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  close(fd);
  return ("\n" + text).find("\n" + name + "\n") != std::string::npos;
}

void Fail(Op& op, int err, const char* sys, const std::string& what, const IptcReq& q) {
  // libiptc reports x_tables' errors through errno; ENOENT from the kernel means a table, match
  // or target it does not have (after trying to load its module): name the ones it lacks now.
  std::string msg = what + " (" + L->iptc_strerror(err) + ")";
  // ENOPROTOOPT: no ip_tables at all (the socket option is unknown).
  if (err == ENOENT || err == ENOPROTOOPT) {
    std::string lacking;
    if (!Listed("ip_tables_names", q.table)) lacking += "legacy iptables table '" + q.table + "' (modules ip_tables, iptable_" + q.table + ")";
    for (const auto& n : q.needs)
      if (!Listed(n[0] == "match" ? "ip_tables_matches" : "ip_tables_targets", n[1])) lacking += (lacking.empty() ? "" : ", ") + n[2];
    if (!lacking.empty()) msg += ": the kernel has no " + lacking;
    if (!q.hint.empty()) msg += "; " + q.hint;
  }
  op.Fail(err ? err : EIO, sys, msg);
}

std::string ProcPath(const std::string& vip) { return "/proc/thread-self/net/ipt_CLUSTERIP/" + vip; }

int ReadNodes(const std::string& vip, std::vector<int>* out) {
  int fd = open(ProcPath(vip).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  std::string text;
  char buf[256];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  int err = n < 0 ? errno : 0;
  close(fd);
  if (err) return err;
  out->clear();
  int cur = -1;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      cur = (cur < 0 ? 0 : cur * 10) + (c - '0');
    } else if (cur >= 0) {
      out->push_back(cur);
      cur = -1;
    }
  }
  if (cur >= 0) out->push_back(cur);
  return 0;
}

// Makes the namespace answer for exactly `want`: adds first, then removes (like a bucket move:
// never a moment where a node number has no owner that had one before).
void SyncNodes(Op& op, IptcReq& q) {
  std::vector<int> have;
  int err = ReadNodes(q.vip, &have);
  if (err) {
    op.Fail(err, "open", "'" + ProcPath(q.vip) + "'" + (err == ENOENT ? " (no CLUSTERIP rule for this VIP in the namespace)" : ""));
    return;
  }
  std::set<int> h(have.begin(), have.end()), w(q.nodes.begin(), q.nodes.end());
  int fd = open(ProcPath(q.vip).c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    op.Fail(errno, "open", "'" + ProcPath(q.vip) + "'");
    return;
  }
  auto put = [&](char sign, int k) {
    std::string s = sign + std::to_string(k) + "\n";
    if (write(fd, s.data(), s.size()) < 0 && !op.err) op.Fail(errno, "write", "'" + ProcPath(q.vip) + "' (" + s.substr(0, s.size() - 1) + ")");
  };
  for (int k : w)
    if (!h.count(k)) put('+', k);
  for (int k : h)
    if (!w.count(k)) put('-', k);
  close(fd);
  if (!op.err) ReadNodes(q.vip, &q.current);
}

void Commit(Op& op, IptcReq& q) {
  Handle hd;
  hd.h = L->iptc_init(q.table.c_str());
  if (!hd.h) return Fail(op, errno, "iptc_init", "table '" + q.table + "'", q);
  xtc_handle* h = hd.h;
  // Our jump rules in the built-in chains go first (they reference the chain).
  std::vector<std::string> builtins;
  for (const char* c = L->iptc_first_chain(h); c; c = L->iptc_next_chain(h))
    if (L->iptc_builtin(c, h)) builtins.push_back(c);
  for (const auto& c : builtins) {
    std::vector<unsigned> ours;
    unsigned i = 0;
    for (const ipt_entry* e = L->iptc_first_rule(c.c_str(), h); e; e = L->iptc_next_rule(e, h), i++)
      if (Read(e, h).comment == q.mark) ours.push_back(i);
    for (auto it = ours.rbegin(); it != ours.rend(); ++it)
      if (!L->iptc_delete_num_entry(c.c_str(), *it, h)) return Fail(op, errno, "iptc_delete_num_entry", "a jump rule in '" + c + "'", q);
  }
  std::vector<xt_counters> old;
  if (L->iptc_is_chain(q.chain.c_str(), h)) {
    for (const ipt_entry* e = L->iptc_first_rule(q.chain.c_str(), h); e; e = L->iptc_next_rule(e, h)) {
      if (Read(e, h).comment != q.mark) {
        op.Fail(EEXIST, "iptc_is_chain", Where(q) + " holds rules without the mark '" + q.mark + "': it is not this cluster's; nothing was changed");
        return;
      }
      old.push_back(e->counters);
    }
    if (!L->iptc_flush_entries(q.chain.c_str(), h)) return Fail(op, errno, "iptc_flush_entries", Where(q), q);
    if (q.remove && !L->iptc_delete_chain(q.chain.c_str(), h)) return Fail(op, errno, "iptc_delete_chain", Where(q), q);
  } else if (!q.remove) {
    if (!L->iptc_create_chain(q.chain.c_str(), h)) return Fail(op, errno, "iptc_create_chain", Where(q), q);
  }
  if (!q.remove) {
    // A replaced rule keeps the counts of the one at its place (the counters stay monotonic).
    for (size_t i = 0; i < q.rules.size(); i++) {
      auto e = Entry(q.rules[i], q.mark, i < old.size() ? &old[i] : nullptr);
      if (!L->iptc_append_entry(q.chain.c_str(), reinterpret_cast<ipt_entry*>(e.data()), h))
        return Fail(op, errno, "iptc_append_entry", "rule " + std::to_string(i + 1) + " of " + Where(q), q);
    }
    for (auto it = q.hooks.rbegin(); it != q.hooks.rend(); ++it) {
      if (!L->iptc_is_chain(it->first.c_str(), h) || !L->iptc_builtin(it->first.c_str(), h)) {
        op.Fail(ENOENT, "iptc_insert_entry", "table '" + q.table + "' has no built-in chain '" + it->first + "'");
        return;
      }
      auto e = Entry(it->second, q.mark, nullptr);
      if (!L->iptc_insert_entry(it->first.c_str(), reinterpret_cast<ipt_entry*>(e.data()), 0, h))
        return Fail(op, errno, "iptc_insert_entry", "the jump rule in '" + it->first + "' of table '" + q.table + "'", q);
    }
  }
  if (!L->iptc_commit(h)) return Fail(op, errno, "iptc_commit", Where(q), q);
  if (q.setNodes && !q.remove) SyncNodes(op, q);
}

void List(Op& op, IptcReq& q) {
  Handle hd;
  hd.h = L->iptc_init(q.table.c_str());
  if (!hd.h) return Fail(op, errno, "iptc_init", "table '" + q.table + "'", q);
  if (!L->iptc_is_chain(q.chain.c_str(), hd.h)) return;
  q.chainFound = true;
  for (const ipt_entry* e = L->iptc_first_rule(q.chain.c_str(), hd.h); e; e = L->iptc_next_rule(e, hd.h)) q.listed.push_back(Read(e, hd.h));
}

}  // namespace

void BuildIptcOp(Napi::Env env, const std::string& type, const Napi::Object& o, Op& op) {
  auto q = std::make_shared<IptcReq>();
  op.kind = OpKind::Iptc;
  op.parse = Parse::Iptc;
  if (type == "clusterip.nodes") {
    q->kind = IptcReq::ClusteripNodes;
    q->vip = Str(o, "vip");
    Ip4(env, q->vip, "vip");
    op.syscall = "clusterip.nodes";
    op.label = "'" + ProcPath(q->vip) + "'";
  } else if (type == "iptc.commit" || type == "iptc.list") {
    q->kind = type == "iptc.commit" ? IptcReq::Commit : IptcReq::List;
    q->table = XtName(env, o, "table", "table");
    q->chain = XtName(env, o, "chain", "chain");
    if (Has(o, "hint")) q->hint = Str(o, "hint");
    if (Has(o, "needs")) {
      Napi::Value nv = o.Get("needs");
      if (!nv.IsArray()) Bad(env, "needs", "needs must be an array of { kind: 'match' | 'target', name, what }");
      Napi::Array a = nv.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) {
        if (!a.Get(i).IsObject()) Bad(env, "needs", "needs must be an array of { kind: 'match' | 'target', name, what }");
        Napi::Object n = a.Get(i).As<Napi::Object>();
        q->needs.push_back({Str(n, "kind") == "target" ? "target" : "match", Str(n, "name"), Str(n, "what")});
      }
    }
    op.syscall = type;
    op.label = "chain '" + q->chain + "' of table '" + q->table + "'";
    if (q->kind == IptcReq::Commit) {
      q->mark = Str(o, "mark");
      if (q->mark.empty() || q->mark.size() >= XT_MAX_COMMENT_LEN) Bad(env, "mark", "mark must be 1.." + std::to_string(XT_MAX_COMMENT_LEN - 1) + " bytes");
      q->remove = o.Get("remove").ToBoolean().Value();
      if (Has(o, "rules")) {
        if (!o.Get("rules").IsArray()) Bad(env, "rules", "rules must be an array");
        Napi::Array a = o.Get("rules").As<Napi::Array>();
        for (uint32_t i = 0; i < a.Length(); i++) {
          std::string w = "rules[" + std::to_string(i) + "]";
          if (!a.Get(i).IsObject()) Bad(env, w, "each rule must be an object");
          q->rules.push_back(BuildRule(env, a.Get(i).As<Napi::Object>(), w));
        }
      }
      if (Has(o, "hooks")) {
        if (!o.Get("hooks").IsArray()) Bad(env, "hooks", "hooks must be an array of { chain, rule }");
        Napi::Array a = o.Get("hooks").As<Napi::Array>();
        for (uint32_t i = 0; i < a.Length(); i++) {
          std::string w = "hooks[" + std::to_string(i) + "]";
          if (!a.Get(i).IsObject()) Bad(env, w, "each hook must be { chain, rule }");
          Napi::Object h = a.Get(i).As<Napi::Object>();
          Napi::Object rule = h.Get("rule").IsObject() ? h.Get("rule").As<Napi::Object>() : Napi::Object::New(env);
          rule.Set("target", q->chain);
          q->hooks.emplace_back(XtName(env, h, "chain", w), BuildRule(env, rule, w + ".rule"));
        }
      }
    }
  } else {
    Bad(env, "type", "unknown op type '" + Echo(type) + "'");
  }
  if (Has(o, "nodes")) {
    if (!o.Get("nodes").IsArray()) Bad(env, "nodes", "nodes must be an array of CLUSTERIP node numbers");
    Napi::Array a = o.Get("nodes").As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value n = a.Get(i);
      double d = n.IsNumber() ? n.As<Napi::Number>().DoubleValue() : -1;
      if (d < 1 || d > CLUSTERIP_MAX_NODES || std::floor(d) != d) Bad(env, "nodes", "node numbers are 1.." + std::to_string(CLUSTERIP_MAX_NODES));
      q->nodes.push_back(static_cast<int>(d));
    }
    q->setNodes = true;
    if (q->kind == IptcReq::Commit) {
      if (!Has(o, "vip")) Bad(env, "vip", "nodes needs vip (the CLUSTERIP address)");
      q->vip = Str(o, "vip");
      Ip4(env, q->vip, "vip");
    }
  }
  op.iptc = q;
}

void RunIptc(Op& op) {
  IptcReq& q = *op.iptc;
  if (q.kind != IptcReq::ClusteripNodes && !LoadIptc()) {
    op.Fail(ELIBACC, "dlopen",
            "libip4tc.so.2, which the iptables backend needs (" + loadError +
                "): install libip4tc2 (Debian/Ubuntu) or iptables-libs (Fedora/RHEL), or use backend 'nftables'");
    return;
  }
  switch (q.kind) {
    case IptcReq::Commit: Commit(op, q); break;
    case IptcReq::List: List(op, q); break;
    case IptcReq::ClusteripNodes: {
      if (q.setNodes) {
        SyncNodes(op, q);
      } else {
        int err = ReadNodes(q.vip, &q.current);
        if (err) op.Fail(err, "open", op.label + (err == ENOENT ? " (no CLUSTERIP rule for this VIP in the namespace)" : ""));
      }
      break;
    }
  }
}

Napi::Value ParseIptc(Napi::Env env, const Op& op) {
  const IptcReq& q = *op.iptc;
  auto nodes = [&](const std::vector<int>& v) {
    Napi::Array a = Napi::Array::New(env, v.size());
    for (uint32_t i = 0; i < v.size(); i++) a.Set(i, v[i]);
    return a;
  };
  if (q.kind == IptcReq::ClusteripNodes) return nodes(q.current);
  if (q.kind == IptcReq::Commit) return q.setNodes ? nodes(q.current) : env.Undefined();
  if (!q.chainFound) return env.Null();
  Napi::Array out = Napi::Array::New(env, q.listed.size());
  for (uint32_t i = 0; i < q.listed.size(); i++) {
    const ListedRule& l = q.listed[i];
    Napi::Object r = Napi::Object::New(env);
    r.Set("target", l.target);
    r.Set("comment", l.comment);
    r.Set("packets", static_cast<double>(l.packets));
    r.Set("bytes", static_cast<double>(l.bytes));
    if (l.cluster) {
      Napi::Object c = Napi::Object::New(env);
      c.Set("totalNodes", l.clusterInfo.total_nodes);
      c.Set("nodeMask", l.clusterInfo.node_mask);
      c.Set("seed", l.clusterInfo.hash_seed);
      c.Set("invert", (l.clusterInfo.flags & XT_CLUSTER_F_INV) != 0);
      r.Set("cluster", c);
    }
    if (l.clusterip) r.Set("localNodes", nodes(l.localNodes));
    out.Set(i, r);
  }
  return out;
}

}  // namespace nc
