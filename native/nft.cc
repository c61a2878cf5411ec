// nftables through libnftnl. An 'nft.batch' op is one nfnetlink transaction: BATCH_BEGIN, one or
// more messages per command (each with NLM_F_ACK and its own part label, so a failure names the
// command that caused it), BATCH_END. The kernel applies all of it or nothing.
#include "nft.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <libmnl/libmnl.h>
#include <errno.h>
#include <string.h>

#include <cmath>

#include "errors.h"
#include "nft_internal.h"

namespace nc {
namespace nftimpl {
namespace {

// Above this many messages in one transaction, successful ones are not acked: the kernel queues
// every ack before sendmsg returns, and without SO_RCVBUFFORCE (no CAP_NET_ADMIN over the init
// namespace) the receive buffer is capped by net.core.rmem_max, a few hundred acks; an overflow
// reads as ENOBUFS although the transaction was committed. Failures are reported with their
// sequence number whether or not NLM_F_ACK is set, so they are still attributed to their command.
constexpr size_t kMaxAckedParts = 512;

// Elements per NEWSETELEM/DELSETELEM message: keeps each message far below the socket buffers.
constexpr size_t kElemsPerMsg = 1024;

// Appends finished messages to op.msg, each as one part with its label.
class Writer {
 public:
  explicit Writer(Op& op) : op_(op) {}
  // A zeroed buffer for one message. libmnl does not bounds-check, so callers size it generously.
  char* Scratch(size_t cap) {
    buf_.assign(cap + 64, 0);
    return buf_.data();
  }
  // Where the next appended message starts in the op's buffer.
  size_t Next() const { return op_.msg.size(); }
  // A u32 at `offset` (in the op's buffer) that the worker fills with link `name`'s index.
  void PatchIfindex(const std::string& name, size_t offset) { op_.patches.push_back({name, offset}); }
  void Append(const struct nlmsghdr* nlh, const std::string& label, size_t cap) {
    if (nlh->nlmsg_len > cap) abort();  // would have overrun Scratch: a sizing bug, never input
    size_t off = op_.msg.size();
    const auto* p = reinterpret_cast<const uint8_t*>(nlh);
    op_.msg.insert(op_.msg.end(), p, p + NLMSG_ALIGN(nlh->nlmsg_len));
    op_.parts.push_back({off, label});
  }

 private:
  Op& op_;
  std::vector<char> buf_;
};

struct nlmsghdr* Hdr(char* buf, uint16_t type, uint32_t family, uint16_t flags) {
  return nftnl_nlmsg_build_hdr(buf, type, static_cast<uint16_t>(family), flags | NLM_F_ACK, 0);
}

std::string FamilyName(const Napi::Object& o) { return Str(o, "family"); }

void PutUdataStr(nftnl_udata_buf* b, uint8_t type, const std::string& s) {
  nftnl_udata_put_strz(b, type, s.c_str());
}

// nft's "typeof" user data, so `nft list` prints `typeof meta cpu : ether daddr`:
// {expr: 'meta', key} or {expr: 'payload', desc, field} (nft's proto_desc id and template index).
void PutTypeof(Napi::Env env, nftnl_udata_buf* b, uint8_t type, const Napi::Object& t, const std::string& what) {
  constexpr uint32_t kExprPayload = 7, kExprMeta = 9;  // nft's enum expr_types
  std::string expr = Str(t, "expr");
  struct nftnl_udata* outer = nftnl_udata_nest_start(b, type);
  if (expr == "meta") {
    nftnl_udata_put_u32(b, NFTNL_UDATA_SET_TYPEOF_EXPR, kExprMeta);
    struct nftnl_udata* inner = nftnl_udata_nest_start(b, NFTNL_UDATA_SET_TYPEOF_DATA);
    nftnl_udata_put_u32(b, 0 /* NFTNL_UDATA_META_KEY */, MetaKey(env, Str(t, "key"), what));
    nftnl_udata_nest_end(b, inner);
  } else if (expr == "payload") {
    nftnl_udata_put_u32(b, NFTNL_UDATA_SET_TYPEOF_EXPR, kExprPayload);
    struct nftnl_udata* inner = nftnl_udata_nest_start(b, NFTNL_UDATA_SET_TYPEOF_DATA);
    nftnl_udata_put_u32(b, 0 /* NFTNL_UDATA_SET_KEY_PAYLOAD_DESC */, Num(env, t, "desc", what));
    nftnl_udata_put_u32(b, 1 /* NFTNL_UDATA_SET_KEY_PAYLOAD_TYPE */, Num(env, t, "field", what));
    nftnl_udata_nest_end(b, inner);
  } else {
    Bad(env, what, "typeof expr must be 'meta' or 'payload'");
  }
  nftnl_udata_nest_end(b, outer);
}

void BuildElements(Napi::Env env, Writer& w, const Napi::Object& c, Ctx& ctx, bool add,
                   const std::string& label, const std::string& what) {
  uint32_t family = Family(env, c, what);
  std::string table = Name(env, c, "table", what), set = Name(env, c, "set", what);
  Napi::Value ev = c.Get("elements");
  if (!ev.IsArray()) Bad(env, what, "elements must be an array");
  Napi::Array arr = ev.As<Napi::Array>();
  uint32_t id = ctx.SetId(table, set);
  size_t n = arr.Length();
  // No message for an empty list: DELSETELEM without elements would flush the whole set, and
  // NEWSETELEM without elements is rejected.
  for (size_t start = 0; start < n; start += kElemsPerMsg) {
    SetPtr s(nftnl_set_alloc());
    nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
    nftnl_set_set_str(s.get(), NFTNL_SET_NAME, set.c_str());
    nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, family);
    if (id) nftnl_set_set_u32(s.get(), NFTNL_SET_ID, id);
    size_t end = std::min(n, start + kElemsPerMsg);
    size_t cap = 1024 + table.size() + set.size();
    for (size_t i = start; i < end; i++) {
      std::string ew = what + ".elements[" + std::to_string(i) + "]";
      Napi::Value v = arr.Get(static_cast<uint32_t>(i));
      if (!v.IsObject()) Bad(env, ew, "must be an object {key, data?, verdict?}");
      Napi::Object eo = v.As<Napi::Object>();
      nftnl_set_elem* el = nftnl_set_elem_alloc();
      nftnl_set_elem_add(s.get(), el);  // owned by the set from here on
      auto key = Bytes(env, eo.Get("key"), ew);
      if (key.empty() || key.size() > 64) Bad(env, ew, "key must be 1..64 bytes");
      nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, key.data(), key.size());
      cap += 64 + key.size();
      if (Has(eo, "data")) {
        auto d = Bytes(env, eo.Get("data"), ew);
        if (d.empty() || d.size() > 64) Bad(env, ew, "data must be 1..64 bytes");
        nftnl_set_elem_set(el, NFTNL_SET_ELEM_DATA, d.data(), d.size());
        cap += 32 + d.size();
      } else if (Has(eo, "verdict")) {
        int32_t vd = Verdict(env, Str(eo, "verdict"), ew);
        nftnl_set_elem_set_u32(el, NFTNL_SET_ELEM_VERDICT, static_cast<uint32_t>(vd));
        cap += 32;
        if (vd == NFT_JUMP || vd == NFT_GOTO) {
          std::string chain = Name(env, eo, "chain", ew);
          nftnl_set_elem_set_str(el, NFTNL_SET_ELEM_CHAIN, chain.c_str());
          cap += 16 + chain.size();
        }
      }
    }
    char* buf = w.Scratch(cap);
    auto* nlh = Hdr(buf, add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM, family, add ? NLM_F_CREATE : 0);
    nftnl_set_elems_nlmsg_build_payload(nlh, s.get());
    std::string l = label;
    if (n > kElemsPerMsg) l += " (elements " + std::to_string(start) + ".." + std::to_string(end - 1) + ")";
    w.Append(nlh, l, cap);
  }
}

// The byte offset (from nlh) of the 4-byte NFTA_DATA_VALUE of expression `index` (an immediate)
// in a NEWRULE message, or -1.
long ImmediateValueOffset(struct nlmsghdr* nlh, uint32_t index) {
  // libmnl's iteration macros do not compile as C++ (void* to nlattr*): the same walk by hand.
  auto find = [](void* start, size_t len, uint16_t type, uint32_t nth) -> struct nlattr* {
    auto* a = static_cast<struct nlattr*>(start);
    int left = static_cast<int>(len);
    for (uint32_t i = 0; mnl_attr_ok(a, left); a = mnl_attr_next(a), left = static_cast<int>(len) - static_cast<int>(reinterpret_cast<char*>(a) - static_cast<char*>(start))) {
      if (type != 0 && mnl_attr_get_type(a) != type) continue;
      if (i++ == nth) return a;
    }
    return nullptr;
  };
  auto in = [&](struct nlattr* a, uint16_t type, uint32_t nth = 0) -> struct nlattr* {
    return a ? find(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a), type, nth) : nullptr;
  };
  struct nlattr* exprs = find(mnl_nlmsg_get_payload_offset(nlh, sizeof(struct nfgenmsg)),
                              nlh->nlmsg_len - MNL_NLMSG_HDRLEN - MNL_ALIGN(sizeof(struct nfgenmsg)), NFTA_RULE_EXPRESSIONS, 0);
  struct nlattr* val = in(in(in(in(exprs, 0, index), NFTA_EXPR_DATA), NFTA_IMMEDIATE_DATA), NFTA_DATA_VALUE);
  if (!val || mnl_attr_get_payload_len(val) != 4) return -1;
  return static_cast<char*>(mnl_attr_get_payload(val)) - reinterpret_cast<char*>(nlh);
}

void BuildCommand(Napi::Env env, Writer& w, const Napi::Object& c, Ctx& ctx, size_t index) {
  std::string what = "commands[" + std::to_string(index) + "]";
  std::string cmd = Str(c, "cmd");
  uint32_t family = Family(env, c, what);
  std::string fam = FamilyName(c);
  std::string tag = " #" + std::to_string(index);
  if (cmd == "addTable" || cmd == "deleteTable" || cmd == "flushTable") {
    std::string name = Name(env, c, "name", what);
    size_t cap = 512 + name.size() + NFTNL_UDATA_COMMENT_MAXLEN;
    char* buf = w.Scratch(cap);
    struct nlmsghdr* nlh;
    std::string verb;
    if (cmd == "flushTable") {
      RulePtr r(nftnl_rule_alloc());
      nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, family);
      nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, name.c_str());
      nlh = Hdr(buf, NFT_MSG_DELRULE, family, 0);
      nftnl_rule_nlmsg_build_payload(nlh, r.get());
      verb = "flush table ";
    } else {
      TablePtr t(nftnl_table_alloc());
      nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, family);
      nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, name.c_str());
      bool add = cmd == "addTable";
      uint16_t flags = add ? NLM_F_CREATE : 0;
      UdataPtr ud;
      if (add && Has(c, "comment")) {
        // As nft stores a table comment: one NUL-terminated string TLV in the table's user data.
        std::string comment = Comment(env, c, what);
        ud.reset(nftnl_udata_buf_alloc(NFTNL_UDATA_COMMENT_MAXLEN + 16));
        PutUdataStr(ud.get(), NFTNL_UDATA_TABLE_COMMENT, comment);
        nftnl_table_set_data(t.get(), NFTNL_TABLE_USERDATA, nftnl_udata_buf_data(ud.get()), nftnl_udata_buf_len(ud.get()));
      }
      // exclusive: an existing table of that name fails with EEXIST instead of being adopted.
      if (add && Has(c, "exclusive") && BoolArg(env, c, "exclusive", what)) flags |= NLM_F_EXCL;
      std::string handleText;
      if (!add && Has(c, "handle")) {
        uint64_t h = Handle(env, c, what);
        nftnl_table_set_u64(t.get(), NFTNL_TABLE_HANDLE, h);
        handleText = " handle " + std::to_string(h);
      }
      nlh = Hdr(buf, add ? NFT_MSG_NEWTABLE : NFT_MSG_DELTABLE, family, flags);
      nftnl_table_nlmsg_build_payload(nlh, t.get());
      verb = add ? "add table " : "delete table ";
      name += handleText;
    }
    w.Append(nlh, verb + fam + " " + name + tag, cap);
  } else if (cmd == "addChain" || cmd == "deleteChain" || cmd == "flushChain") {
    std::string table = Name(env, c, "table", what), name = Name(env, c, "name", what);
    size_t cap = 1024 + table.size() + name.size();
    char* buf = w.Scratch(cap);
    struct nlmsghdr* nlh;
    std::string verb;
    if (cmd == "flushChain") {
      RulePtr r(nftnl_rule_alloc());
      nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, family);
      nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
      nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, name.c_str());
      nlh = Hdr(buf, NFT_MSG_DELRULE, family, 0);
      nftnl_rule_nlmsg_build_payload(nlh, r.get());
      verb = "flush chain ";
    } else {
      ChainPtr ch(nftnl_chain_alloc());
      nftnl_chain_set_u32(ch.get(), NFTNL_CHAIN_FAMILY, family);
      nftnl_chain_set_str(ch.get(), NFTNL_CHAIN_TABLE, table.c_str());
      nftnl_chain_set_str(ch.get(), NFTNL_CHAIN_NAME, name.c_str());
      bool add = cmd == "addChain";
      if (add && Has(c, "hook")) {
        static const std::map<std::string, uint32_t> hooks = {
            {"prerouting", NF_INET_PRE_ROUTING}, {"input", NF_INET_LOCAL_IN},
            {"forward", NF_INET_FORWARD},        {"output", NF_INET_LOCAL_OUT},
            {"postrouting", NF_INET_POST_ROUTING}, {"ingress", NF_INET_INGRESS},
            {"egress", NF_INET_NUMHOOKS}};
        std::string hookName = Str(c, "hook");
        uint32_t hook = Pick(env, what + ".hook", hookName, hooks);
        if (family == NFPROTO_NETDEV) {
          // netdev numbers its hooks itself: ingress 0, egress 1 (Linux 5.16 and later).
          if (hookName != "ingress" && hookName != "egress") Bad(env, what, "netdev chains support only the ingress and egress hooks");
          hook = hookName == "ingress" ? NF_NETDEV_INGRESS : NF_NETDEV_EGRESS;
          if (!Has(c, "device")) Bad(env, what, "a netdev " + hookName + " chain needs a device");
        } else if (hookName == "egress") {
          Bad(env, what, "only netdev chains have the egress hook");
        }
        nftnl_chain_set_u32(ch.get(), NFTNL_CHAIN_HOOKNUM, hook);
        int32_t prio = 0;
        if (Has(c, "priority")) {
          Napi::Value p = c.Get("priority");
          if (!p.IsNumber()) Bad(env, what, "priority must be a number");
          prio = p.As<Napi::Number>().Int32Value();
        }
        nftnl_chain_set_s32(ch.get(), NFTNL_CHAIN_PRIO, prio);
        std::string type = Has(c, "chainType") ? Str(c, "chainType") : "filter";
        if (type != "filter" && type != "nat" && type != "route") Bad(env, what, "chainType must be filter, nat or route");
        nftnl_chain_set_str(ch.get(), NFTNL_CHAIN_TYPE, type.c_str());
        if (Has(c, "policy")) {
          std::string pol = Str(c, "policy");
          if (pol != "accept" && pol != "drop") Bad(env, what, "policy must be accept or drop");
          nftnl_chain_set_u32(ch.get(), NFTNL_CHAIN_POLICY, pol == "accept" ? NF_ACCEPT : NF_DROP);
        }
        if (Has(c, "device")) {
          std::string dev = Str(c, "device");
          if (dev.empty() || dev.size() >= IFNAMSIZ) Bad(env, what, "device must be an interface name");
          nftnl_chain_set_str(ch.get(), NFTNL_CHAIN_DEV, dev.c_str());
        }
      } else if (add && (Has(c, "priority") || Has(c, "policy") || Has(c, "chainType") || Has(c, "device"))) {
        Bad(env, what, "priority, policy, chainType and device need a hook");
      }
      nlh = Hdr(buf, add ? NFT_MSG_NEWCHAIN : NFT_MSG_DELCHAIN, family, add ? NLM_F_CREATE : 0);
      nftnl_chain_nlmsg_build_payload(nlh, ch.get());
      verb = add ? "add chain " : "delete chain ";
    }
    w.Append(nlh, verb + fam + " " + table + " " + name + tag, cap);
  } else if (cmd == "addSet" || cmd == "deleteSet" || cmd == "flushSet") {
    std::string table = Name(env, c, "table", what), name = Name(env, c, "name", what);
    size_t cap = 2048 + table.size() + name.size();
    char* buf = w.Scratch(cap);
    SetPtr s(nftnl_set_alloc());
    nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, family);
    nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
    nftnl_set_set_str(s.get(), NFTNL_SET_NAME, name.c_str());
    struct nlmsghdr* nlh;
    std::string verb;
    if (cmd == "addSet") {
      static const std::map<std::string, uint32_t> flagNames = {
          {"constant", NFT_SET_CONSTANT}, {"interval", NFT_SET_INTERVAL}, {"timeout", NFT_SET_TIMEOUT},
          {"dynamic", NFT_SET_EVAL},      {"map", NFT_SET_MAP}};
      uint32_t flags = 0;
      if (Has(c, "flags")) {
        Napi::Value fv = c.Get("flags");
        if (!fv.IsArray()) Bad(env, what, "flags must be an array of strings");
        Napi::Array fa = fv.As<Napi::Array>();
        for (uint32_t i = 0; i < fa.Length(); i++) {
          Napi::Value f = fa.Get(i);
          if (!f.IsString()) Bad(env, what, "flags must be an array of strings");
          flags |= Pick(env, what + ".flags", f.As<Napi::String>().Utf8Value(), flagNames);
        }
      }
      uint32_t keyLen = Num(env, c, "keyLen", what);
      if (keyLen == 0 || keyLen > 64) Bad(env, what, "keyLen must be 1..64");
      nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, Num(env, c, "keyType", what));
      nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, keyLen);
      bool verdictMap = false;
      if (Has(c, "dataType")) {
        flags |= NFT_SET_MAP;
        Napi::Value dt = c.Get("dataType");
        if (dt.IsString()) {
          if (dt.As<Napi::String>().Utf8Value() != "verdict") Bad(env, what, "dataType must be a number or 'verdict'");
          nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
          nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_LEN, sizeof(uint32_t));
          verdictMap = true;
        } else {
          uint32_t dlen = Num(env, c, "dataLen", what);
          if (dlen == 0 || dlen > 64) Bad(env, what, "dataLen must be 1..64");
          nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_TYPE, Num(env, c, "dataType", what));
          nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_LEN, dlen);
        }
      } else if (flags & NFT_SET_MAP) {
        Bad(env, what, "a map needs dataType");
      }
      nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, flags);
      if (Has(c, "size")) nftnl_set_set_u32(s.get(), NFTNL_SET_DESC_SIZE, Num(env, c, "size", what));
      // nft's own user data: the byte order of keys/data, which `nft list` needs to print them.
      UdataPtr ud(nftnl_udata_buf_alloc(256));
      bool anyUd = false;
      static const std::map<std::string, uint32_t> orders = {{"host", 1}, {"big", 2}};
      if (Has(c, "keyByteorder")) {
        nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_KEYBYTEORDER, Pick(env, what + ".keyByteorder", Str(c, "keyByteorder"), orders));
        anyUd = true;
      }
      if (Has(c, "dataByteorder") && !verdictMap) {
        nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_DATABYTEORDER, Pick(env, what + ".dataByteorder", Str(c, "dataByteorder"), orders));
        anyUd = true;
      }
      if (Has(c, "keyTypeof")) {
        PutTypeof(env, ud.get(), NFTNL_UDATA_SET_KEY_TYPEOF, ObjArg(env, c, "keyTypeof", what), what + ".keyTypeof");
        anyUd = true;
      }
      if (Has(c, "dataTypeof") && !verdictMap) {
        PutTypeof(env, ud.get(), NFTNL_UDATA_SET_DATA_TYPEOF, ObjArg(env, c, "dataTypeof", what), what + ".dataTypeof");
        anyUd = true;
      }
      if (Has(c, "comment")) {
        std::string comment = Comment(env, c, what);
        PutUdataStr(ud.get(), NFTNL_UDATA_SET_COMMENT, comment);
        anyUd = true;
      }
      if (anyUd) nftnl_set_set_data(s.get(), NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud.get()), nftnl_udata_buf_len(ud.get()));
      uint32_t id = ctx.nextId++;
      ctx.setIds[table + '\0' + name] = id;
      nftnl_set_set_u32(s.get(), NFTNL_SET_ID, id);
      nlh = Hdr(buf, NFT_MSG_NEWSET, family, NLM_F_CREATE);
      nftnl_set_nlmsg_build_payload(nlh, s.get());
      verb = flags & NFT_SET_MAP ? "add map " : "add set ";
    } else if (cmd == "deleteSet") {
      nlh = Hdr(buf, NFT_MSG_DELSET, family, 0);
      nftnl_set_nlmsg_build_payload(nlh, s.get());
      verb = "delete set ";
    } else {
      nlh = Hdr(buf, NFT_MSG_DELSETELEM, family, 0);
      nftnl_set_elems_nlmsg_build_payload(nlh, s.get());
      verb = "flush set ";
    }
    w.Append(nlh, verb + fam + " " + table + " " + name + tag, cap);
  } else if (cmd == "addElements" || cmd == "deleteElements") {
    bool add = cmd == "addElements";
    std::string label = std::string(add ? "add element " : "delete element ") + fam + " " + Name(env, c, "table", what) +
                        " " + Name(env, c, "set", what) + tag;
    BuildElements(env, w, c, ctx, add, label, what);
  } else if (cmd == "addRule" || cmd == "deleteRule") {
    std::string table = Name(env, c, "table", what), chain = Name(env, c, "chain", what);
    RulePtr r(nftnl_rule_alloc());
    nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, family);
    nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
    nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain.c_str());
    size_t cap = 1024 + table.size() + chain.size();
    struct nlmsghdr* nlh;
    std::string verb;
    if (cmd == "addRule") {
      Napi::Value ev = c.Get("exprs");
      if (!ev.IsArray()) Bad(env, what, "exprs must be an array");
      Napi::Array arr = ev.As<Napi::Array>();
      ctx.table = table;
      std::vector<std::pair<uint32_t, std::string>> ifindexOf;  // expression index, link name
      for (uint32_t i = 0; i < arr.Length(); i++) {
        std::string ew = what + ".exprs[" + std::to_string(i) + "]";
        Napi::Value v = arr.Get(i);
        if (!v.IsObject()) Bad(env, ew, "must be an object");
        Napi::Object eo = v.As<Napi::Object>();
        nftnl_rule_add_expr(r.get(), BuildExpr(env, eo, ctx, ew));
        if (Has(eo, "ifindexOf")) ifindexOf.emplace_back(i, Str(eo, "ifindexOf"));
        cap += 512;  // the largest expression (bitwise, or lookup with a 255-byte set name) is below
      }
      if (Has(c, "comment")) {
        std::string comment = Comment(env, c, what);
        UdataPtr ud(nftnl_udata_buf_alloc(NFTNL_UDATA_COMMENT_MAXLEN + 16));
        PutUdataStr(ud.get(), NFTNL_UDATA_RULE_COMMENT, comment);
        nftnl_rule_set_data(r.get(), NFTNL_RULE_USERDATA, nftnl_udata_buf_data(ud.get()), nftnl_udata_buf_len(ud.get()));
        cap += 256;
      }
      char* buf = w.Scratch(cap);
      nlh = Hdr(buf, NFT_MSG_NEWRULE, family, NLM_F_CREATE | NLM_F_APPEND);
      verb = "add rule ";
      nftnl_rule_nlmsg_build_payload(nlh, r.get());
      for (const auto& [i, name] : ifindexOf) {
        long at = ImmediateValueOffset(nlh, i);
        if (at < 0) abort();  // an immediate built above always has its 4-byte value
        w.PatchIfindex(name, w.Next() + static_cast<size_t>(at));
      }
    } else {
      nftnl_rule_set_u64(r.get(), NFTNL_RULE_HANDLE, Handle(env, c, what));
      char* buf = w.Scratch(cap);
      nlh = Hdr(buf, NFT_MSG_DELRULE, family, 0);
      verb = "delete rule ";
      nftnl_rule_nlmsg_build_payload(nlh, r.get());
    }
    w.Append(nlh, verb + fam + " " + table + " " + chain + tag, cap);
  } else {
    Bad(env, what, "unknown command '" + Echo(cmd) + "'");
  }
}

void BuildBatch(Napi::Env env, const Napi::Object& o, Op& op) {
  Napi::Value cv = o.Get("commands");
  if (!cv.IsArray()) Bad(env, "nft.batch", "commands must be an array");
  Napi::Array arr = cv.As<Napi::Array>();
  Writer w(op);
  Ctx ctx;
  char* buf = w.Scratch(64);
  // Begin/end are parts too: they get sequence numbers, so an error on them (e.g. EPERM) is reported.
  w.Append(nftnl_batch_begin(buf, 0), "(transaction begin)", 64);
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsObject()) Bad(env, "commands[" + std::to_string(i) + "]", "must be an object");
    BuildCommand(env, w, v.As<Napi::Object>(), ctx, i);
  }
  buf = w.Scratch(64);
  w.Append(nftnl_batch_end(buf, 0), "(transaction commit)", 64);
  if (op.parts.size() > kMaxAckedParts) {
    for (const auto& p : op.parts)
      reinterpret_cast<struct nlmsghdr*>(op.msg.data() + p.offset)->nlmsg_flags &= ~NLM_F_ACK;
  }
  op.syscall = "nftables";
  op.label = "transaction";
}

}  // namespace
}  // namespace nftimpl

using namespace nftimpl;

void BuildNftOp(Napi::Env env, const std::string& type, const Napi::Object& o, Op& op) {
  op.protocol = NETLINK_NETFILTER;
  if (type == "nft.batch") {
    BuildBatch(env, o, op);
  } else if (type == "nft.list") {
    BuildList(env, o, op);
  } else if (type == "nft.elements") {
    BuildElemList(env, o, op);
  } else if (type == "nft.tables") {
    BuildTableList(env, o, op);
  } else {
    ArgError(env, false, "type", "unknown op type '" + Echo(type) + "'");
  }
}

}  // namespace nc
