// nftables dumps: a table's rules ('nft.list'), the tables ('nft.tables'), a set's elements
// ('nft.elements'), and their parsers into JS objects.
#include "nft.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <errno.h>
#include <string.h>

#include <map>

#include <cmath>

#include "errors.h"
#include "nft_internal.h"

namespace nc {
namespace nftimpl {

void BuildList(Napi::Env env, const Napi::Object& o, Op& op) {
  uint32_t family = Family(env, o, "nft.list");
  std::string table = Name(env, o, "table", "nft.list");
  RulePtr r(nftnl_rule_alloc());
  nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, family);
  nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
  if (Has(o, "chain")) nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, Name(env, o, "chain", "nft.list").c_str());
  std::vector<char> buf(2048, 0);
  auto* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETRULE, static_cast<uint16_t>(family), NLM_F_DUMP, 0);
  nftnl_rule_nlmsg_build_payload(nlh, r.get());
  op.msg.assign(buf.data(), buf.data() + nlh->nlmsg_len);
  op.dump = true;
  op.parse = Parse::NftRules;
  op.syscall = "NFT_MSG_GETRULE";
  op.label = "list rules " + Str(o, "family") + " " + table;
}

void BuildTableList(Napi::Env env, const Napi::Object& o, Op& op) {
  uint32_t family = Has(o, "family") ? Family(env, o, "nft.tables") : static_cast<uint32_t>(NFPROTO_UNSPEC);
  std::vector<char> buf(256, 0);
  auto* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETTABLE, static_cast<uint16_t>(family), NLM_F_DUMP, 0);
  op.msg.assign(buf.data(), buf.data() + nlh->nlmsg_len);
  op.dump = true;
  op.parse = Parse::NftTables;
  op.syscall = "NFT_MSG_GETTABLE";
  op.label = "list tables" + (Has(o, "family") ? " " + Str(o, "family") : std::string());
}

const char* FamilyToName(uint32_t f) {
  switch (f) {
    case NFPROTO_IPV4: return "ip";
    case NFPROTO_IPV6: return "ip6";
    case NFPROTO_INET: return "inet";
    case NFPROTO_BRIDGE: return "bridge";
    case NFPROTO_ARP: return "arp";
    case NFPROTO_NETDEV: return "netdev";
    default: return nullptr;
  }
}

void BuildElemList(Napi::Env env, const Napi::Object& o, Op& op) {
  uint32_t family = Family(env, o, "nft.elements");
  std::string table = Name(env, o, "table", "nft.elements"), set = Name(env, o, "set", "nft.elements");
  SetPtr s(nftnl_set_alloc());
  nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, family);
  nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
  nftnl_set_set_str(s.get(), NFTNL_SET_NAME, set.c_str());
  std::vector<char> buf(2048, 0);
  auto* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETSETELEM, static_cast<uint16_t>(family), NLM_F_DUMP, 0);
  nftnl_set_elems_nlmsg_build_payload(nlh, s.get());
  op.msg.assign(buf.data(), buf.data() + nlh->nlmsg_len);
  op.dump = true;
  op.parse = Parse::NftElems;
  op.syscall = "NFT_MSG_GETSETELEM";
  op.label = "list set " + Str(o, "family") + " " + table + " " + set;
}

std::string ToHex(const void* p, uint32_t len) {
  static const char* digits = "0123456789abcdef";
  std::string s = "0x";
  const auto* b = static_cast<const uint8_t*>(p);
  for (uint32_t i = 0; i < len; i++) {
    s += digits[b[i] >> 4];
    s += digits[b[i] & 15];
  }
  return s;
}

std::string VerdictName(int32_t v) {
  switch (v) {
    case NF_ACCEPT: return "accept";
    case NF_DROP: return "drop";
    case NFT_CONTINUE: return "continue";
    case NFT_RETURN: return "return";
    case NFT_JUMP: return "jump";
    case NFT_GOTO: return "goto";
    case NFT_BREAK: return "break";
    default: return std::to_string(v);
  }
}

}  // namespace nftimpl

using namespace nftimpl;

Napi::Value ParseNftRules(Napi::Env env, const Op& op) {
  Napi::Array arr = Napi::Array::New(env);
  uint32_t n = 0;
  for (const auto& reply : op.replies) {
    const auto* nlh = reinterpret_cast<const struct nlmsghdr*>(reply.data());
    if (nlh->nlmsg_type != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE)) continue;
    RulePtr r(nftnl_rule_alloc());
    if (nftnl_rule_nlmsg_parse(nlh, r.get()) < 0) continue;
    Napi::Object o = Napi::Object::New(env);
    o.Set("chain", nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN));
    o.Set("handle", static_cast<double>(nftnl_rule_get_u64(r.get(), NFTNL_RULE_HANDLE)));
    if (nftnl_rule_is_set(r.get(), NFTNL_RULE_USERDATA)) {
      uint32_t len = 0;
      const void* ud = nftnl_rule_get_data(r.get(), NFTNL_RULE_USERDATA, &len);
      std::string comment;
      nftnl_udata_parse(
          ud, len,
          [](const struct nftnl_udata* a, void* data) -> int {
            if (nftnl_udata_type(a) == NFTNL_UDATA_RULE_COMMENT && nftnl_udata_len(a) > 0) {
              const char* s = static_cast<const char*>(nftnl_udata_get(a));
              *static_cast<std::string*>(data) = std::string(s, strnlen(s, nftnl_udata_len(a)));
            }
            return 0;
          },
          &comment);
      if (!comment.empty()) o.Set("comment", comment);
    }
    // Its counters (summed), and the link a fwd sends to: the 4-byte value last loaded into the
    // fwd's register by an immediate.
    struct Counts {
      bool any = false;
      uint64_t packets = 0, bytes = 0;
      std::map<uint32_t, uint32_t> regs;
      bool fwd = false;
      uint32_t fwdIndex = 0;
    } counts;
    nftnl_expr_foreach(
        r.get(),
        [](struct nftnl_expr* e, void* data) -> int {
          auto* c = static_cast<Counts*>(data);
          const char* name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
          if (strcmp(name, "counter") == 0) {
            c->any = true;
            c->packets += nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
            c->bytes += nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_BYTES);
          } else if (strcmp(name, "immediate") == 0 && nftnl_expr_is_set(e, NFTNL_EXPR_IMM_DATA)) {
            uint32_t len = 0;
            const void* d = nftnl_expr_get_data(e, NFTNL_EXPR_IMM_DATA, &len);
            uint32_t v = 0;
            if (len == sizeof(v)) memcpy(&v, d, sizeof(v));
            c->regs[nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_DREG)] = v;
          } else if (strcmp(name, "fwd") == 0) {
            c->fwd = true;
            c->fwdIndex = c->regs[nftnl_expr_get_u32(e, NFTNL_EXPR_FWD_SREG_DEV)];
          }
          return 0;
        },
        &counts);
    if (counts.any) {
      o.Set("packets", static_cast<double>(counts.packets));
      o.Set("bytes", static_cast<double>(counts.bytes));
    }
    if (counts.fwd) o.Set("fwdIndex", counts.fwdIndex);
    arr.Set(n++, o);
  }
  return arr;
}

Napi::Value ParseNftTables(Napi::Env env, const Op& op) {
  Napi::Array arr = Napi::Array::New(env);
  uint32_t n = 0;
  for (const auto& reply : op.replies) {
    const auto* nlh = reinterpret_cast<const struct nlmsghdr*>(reply.data());
    if (nlh->nlmsg_type != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE)) continue;
    TablePtr t(nftnl_table_alloc());
    if (nftnl_table_nlmsg_parse(nlh, t.get()) < 0) continue;
    const char* fam = FamilyToName(nftnl_table_get_u32(t.get(), NFTNL_TABLE_FAMILY));
    if (!fam || !nftnl_table_is_set(t.get(), NFTNL_TABLE_NAME)) continue;
    Napi::Object o = Napi::Object::New(env);
    o.Set("family", fam);
    o.Set("name", nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME));
    o.Set("handle", static_cast<double>(nftnl_table_get_u64(t.get(), NFTNL_TABLE_HANDLE)));
    if (nftnl_table_is_set(t.get(), NFTNL_TABLE_USERDATA)) {
      uint32_t len = 0;
      const void* ud = nftnl_table_get_data(t.get(), NFTNL_TABLE_USERDATA, &len);
      std::string comment;
      bool found = false;
      struct Out {
        std::string* s;
        bool* found;
      } out{&comment, &found};
      nftnl_udata_parse(
          ud, len,
          [](const struct nftnl_udata* a, void* data) -> int {
            auto* o = static_cast<Out*>(data);
            if (nftnl_udata_type(a) == NFTNL_UDATA_TABLE_COMMENT) {
              const char* s = static_cast<const char*>(nftnl_udata_get(a));
              *o->s = std::string(s, strnlen(s, nftnl_udata_len(a)));
              *o->found = true;
            }
            return 0;
          },
          &out);
      if (found) o.Set("comment", comment);
    }
    arr.Set(n++, o);
  }
  return arr;
}

Napi::Value ParseNftElems(Napi::Env env, const Op& op) {
  Napi::Array arr = Napi::Array::New(env);
  uint32_t n = 0;
  for (const auto& reply : op.replies) {
    const auto* nlh = reinterpret_cast<const struct nlmsghdr*>(reply.data());
    if (nlh->nlmsg_type != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM)) continue;
    SetPtr s(nftnl_set_alloc());
    if (nftnl_set_elems_nlmsg_parse(nlh, s.get()) < 0) continue;
    struct State {
      Napi::Env env;
      Napi::Array arr;
      uint32_t* n;
    } st{env, arr, &n};
    nftnl_set_elem_foreach(
        s.get(),
        [](struct nftnl_set_elem* e, void* data) -> int {
          auto* st = static_cast<State*>(data);
          Napi::Object o = Napi::Object::New(st->env);
          uint32_t len = 0;
          const void* k = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len);
          if (k) o.Set("key", ToHex(k, len));
          if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_DATA)) {
            const void* d = nftnl_set_elem_get(e, NFTNL_SET_ELEM_DATA, &len);
            o.Set("data", ToHex(d, len));
          }
          if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_VERDICT)) {
            o.Set("verdict", VerdictName(static_cast<int32_t>(nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_VERDICT))));
            if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_CHAIN))
              o.Set("chain", nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN));
          }
          st->arr.Set((*st->n)++, o);
          return 0;
        },
        &st);
  }
  return arr;
}

}  // namespace nc
