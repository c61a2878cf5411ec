// nftables through libnftnl. An 'nft.batch' op is one nfnetlink transaction: BATCH_BEGIN, one or
// more messages per command (each with NLM_F_ACK and its own part label, so a failure names the
// command that caused it), BATCH_END. The kernel applies all of it or nothing.
#include "nft.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <string.h>

#include <cmath>
#include <map>
#include <memory>
#include <vector>

extern "C" {
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
}

#include "attr.h"

namespace nc {

namespace {

struct TableFree { void operator()(nftnl_table* p) const { nftnl_table_free(p); } };
struct ChainFree { void operator()(nftnl_chain* p) const { nftnl_chain_free(p); } };
struct SetFree { void operator()(nftnl_set* p) const { nftnl_set_free(p); } };
struct RuleFree { void operator()(nftnl_rule* p) const { nftnl_rule_free(p); } };
struct ExprFree { void operator()(nftnl_expr* p) const { nftnl_expr_free(p); } };
struct UdataFree { void operator()(nftnl_udata_buf* p) const { nftnl_udata_buf_free(p); } };
using TablePtr = std::unique_ptr<nftnl_table, TableFree>;
using ChainPtr = std::unique_ptr<nftnl_chain, ChainFree>;
using SetPtr = std::unique_ptr<nftnl_set, SetFree>;
using RulePtr = std::unique_ptr<nftnl_rule, RuleFree>;
using ExprPtr = std::unique_ptr<nftnl_expr, ExprFree>;
using UdataPtr = std::unique_ptr<nftnl_udata_buf, UdataFree>;

// Above this many messages in one transaction, successful ones are not acked: the kernel queues
// every ack before sendmsg returns, and without SO_RCVBUFFORCE (no CAP_NET_ADMIN over the init
// namespace) the receive buffer is capped by net.core.rmem_max, a few hundred acks; an overflow
// reads as ENOBUFS although the transaction was committed. Failures are reported with their
// sequence number whether or not NLM_F_ACK is set, so they are still attributed to their command.
constexpr size_t kMaxAckedParts = 512;

// Elements per NEWSETELEM/DELSETELEM message: keeps each message far below the socket buffers.
constexpr size_t kElemsPerMsg = 1024;

[[noreturn]] void Bad(Napi::Env env, const std::string& what, const std::string& msg) {
  ArgError(env, false, what, msg);
}

template <typename T>
T Pick(Napi::Env env, const std::string& what, const std::string& v,
       const std::map<std::string, T>& names) {
  auto it = names.find(v);
  if (it == names.end()) {
    std::string all;
    for (const auto& n : names) all += (all.empty() ? "" : ", ") + n.first;
    Bad(env, what, "unknown value '" + Echo(v) + "' (expected one of: " + all + ")");
  }
  return it->second;
}

// A table/chain/set name: the kernel's limit (NFT_NAME_MAXLEN with the NUL), checked here because
// message buffers are sized from it.
std::string Name(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what) {
  std::string s = Str(o, key);
  if (s.empty() || s.size() >= NFT_NAME_MAXLEN || s.find('\0') != std::string::npos)
    Bad(env, what, std::string(key) + " must be 1.." + std::to_string(NFT_NAME_MAXLEN - 1) + " bytes");
  return s;
}

uint32_t Family(Napi::Env env, const Napi::Object& o, const std::string& what) {
  static const std::map<std::string, uint32_t> names = {
      {"ip", NFPROTO_IPV4},   {"ip6", NFPROTO_IPV6},     {"inet", NFPROTO_INET},
      {"bridge", NFPROTO_BRIDGE}, {"arp", NFPROTO_ARP}, {"netdev", NFPROTO_NETDEV}};
  return Pick(env, what + ".family", Str(o, "family"), names);
}

uint32_t Num(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) Bad(env, what, std::string(key) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d < 0 || d > 4294967295.0 || std::floor(d) != d)
    Bad(env, what, std::string(key) + " must be an integer 0..2^32-1");
  return static_cast<uint32_t>(d);
}

std::vector<uint8_t> Hex(Napi::Env env, const std::string& s, const std::string& what) {
  std::string h = s.substr(2);
  if (h.empty() || h.size() % 2) Bad(env, what, "'" + Echo(s) + "' is not a hex string: write 0x and pairs of hex digits");
  std::vector<uint8_t> out;
  for (size_t i = 0; i < h.size(); i += 2) {
    char* end = nullptr;
    std::string byte = h.substr(i, 2);
    unsigned long b = strtoul(byte.c_str(), &end, 16);
    if (*end || byte.size() != 2 || !isxdigit(static_cast<unsigned char>(byte[0])) || !isxdigit(static_cast<unsigned char>(byte[1])))
      Bad(env, what, "'" + Echo(s) + "' is not a hex string: write 0x and pairs of hex digits");
    out.push_back(static_cast<uint8_t>(b));
  }
  return out;
}

// A value as the bytes nft would put in a register: a number is a u32 in host byte order (like
// nft's integer types); a string is "0x<hex>", a MAC ("02:00:00:00:00:01") or an IPv4/IPv6
// address; a Uint8Array/Buffer is taken as is.
std::vector<uint8_t> Bytes(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (v.IsTypedArray()) {
    if (v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      Bad(env, what, "data must be a Uint8Array");
    auto u = v.As<Napi::Uint8Array>();
    return std::vector<uint8_t>(u.Data(), u.Data() + u.ByteLength());
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (d < 0 || d > 4294967295.0 || std::floor(d) != d) Bad(env, what, "number must be a u32");
    uint32_t x = static_cast<uint32_t>(d);
    std::vector<uint8_t> out(4);
    memcpy(out.data(), &x, 4);
    return out;
  }
  if (v.IsString()) {
    std::string s = v.As<Napi::String>().Utf8Value();
    if (s.rfind("0x", 0) == 0) return Hex(env, s, what);
    if (s.size() == 17 && s[2] == ':' && s[5] == ':') {
      uint8_t mac[6];
      ParseMac(env, what, s, mac);
      return std::vector<uint8_t>(mac, mac + 6);
    }
    uint8_t a[16];
    if (inet_pton(AF_INET, s.c_str(), a) == 1) return std::vector<uint8_t>(a, a + 4);
    if (inet_pton(AF_INET6, s.c_str(), a) == 1) return std::vector<uint8_t>(a, a + 16);
    Bad(env, what, "cannot read '" + Echo(s) + "' as data (expected 0x<hex>, a MAC or an IP address)");
  }
  Bad(env, what, "data must be a number, a string or a Uint8Array");
}

// A comment as nft stores it (set, rule, table): a C string, shorter than 128 bytes.
std::string Comment(Napi::Env env, const Napi::Object& o, const std::string& what) {
  Napi::Value v = o.Get("comment");
  if (!v.IsString()) Bad(env, what, "comment must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) Bad(env, what, "comment must not contain NUL characters");
  if (s.size() >= NFTNL_UDATA_COMMENT_MAXLEN)
    Bad(env, what, "comment is " + std::to_string(s.size()) + " bytes; nft allows at most 127");
  return s;
}

bool BoolArg(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what) {
  Napi::Value v = o.Get(key);
  if (!v.IsBoolean()) Bad(env, what, std::string(key) + " must be true or false");
  return v.As<Napi::Boolean>().Value();
}

// An object handle as nft reports it: a positive integer (below 2^53, as JS numbers are exact there).
uint64_t Handle(Napi::Env env, const Napi::Object& o, const std::string& what) {
  Napi::Value v = o.Get("handle");
  if (!v.IsNumber()) Bad(env, what, "handle must be a number (from listRules/listTables)");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 1 && d <= 9007199254740991.0) || std::floor(d) != d)
    Bad(env, what, "handle must be a positive integer (from listRules/listTables)");
  return static_cast<uint64_t>(d);
}

Napi::Object ObjArg(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what) {
  Napi::Value v = o.Get(key);
  if (!v.IsObject()) ArgError(env, true, what + "." + key, "must be an object");
  return v.As<Napi::Object>();
}

int32_t Verdict(Napi::Env env, const std::string& v, const std::string& what) {
  static const std::map<std::string, int32_t> names = {
      {"accept", NF_ACCEPT}, {"drop", NF_DROP},   {"continue", NFT_CONTINUE}, {"return", NFT_RETURN},
      {"jump", NFT_JUMP},    {"goto", NFT_GOTO}, {"break", NFT_BREAK}};
  return Pick(env, what + ".verdict", v, names);
}

uint32_t Reg(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what) {
  uint32_t r = Num(env, o, key, what);
  if (r > NFT_REG32_15) Bad(env, what, std::string(key) + " is not a register number");
  return r;
}

uint32_t MetaKey(Napi::Env env, const std::string& k, const std::string& what) {
  static const std::map<std::string, uint32_t> names = {
      {"len", NFT_META_LEN},           {"protocol", NFT_META_PROTOCOL},
      {"priority", NFT_META_PRIORITY}, {"mark", NFT_META_MARK},
      {"iif", NFT_META_IIF},           {"oif", NFT_META_OIF},
      {"iifname", NFT_META_IIFNAME},   {"oifname", NFT_META_OIFNAME},
      {"iiftype", NFT_META_IIFTYPE},   {"oiftype", NFT_META_OIFTYPE},
      {"nfproto", NFT_META_NFPROTO},   {"l4proto", NFT_META_L4PROTO},
      {"pkttype", NFT_META_PKTTYPE},   {"cpu", NFT_META_CPU},
      {"ibrname", NFT_META_BRI_IIFNAME}, {"obrname", NFT_META_BRI_OIFNAME},
      {"iifgroup", NFT_META_IIFGROUP}, {"oifgroup", NFT_META_OIFGROUP},
      {"nftrace", NFT_META_NFTRACE},   {"prandom", NFT_META_PRANDOM},
      {"skuid", NFT_META_SKUID},       {"skgid", NFT_META_SKGID},
      {"cgroup", NFT_META_CGROUP},     {"iifkind", NFT_META_IIFKIND},
      {"oifkind", NFT_META_OIFKIND}};
  return Pick(env, what + ".key", k, names);
}

// Per-transaction state: sets created in this batch are referenced by id, as nft does.
struct Ctx {
  std::map<std::string, uint32_t> setIds;  // "table\0set" -> id
  uint32_t nextId = 1;
  uint32_t family = 0;
  std::string table;
  uint32_t SetId(const std::string& table, const std::string& set) const {
    auto it = setIds.find(table + '\0' + set);
    return it == setIds.end() ? 0 : it->second;
  }
};

nftnl_expr* BuildExpr(Napi::Env env, const Napi::Object& e, const Ctx& ctx, const std::string& what) {
  std::string type = Str(e, "type");
  auto has = [&](const char* k) { return Has(e, k); };
  ExprPtr x;
  auto alloc = [&](const char* name) {
    x.reset(nftnl_expr_alloc(name));
    if (!x) throw Napi::Error::New(env, "out of memory");
  };
  if (type == "payload") {
    alloc("payload");
    static const std::map<std::string, uint32_t> bases = {{"ll", NFT_PAYLOAD_LL_HEADER},
                                                          {"network", NFT_PAYLOAD_NETWORK_HEADER},
                                                          {"transport", NFT_PAYLOAD_TRANSPORT_HEADER},
                                                          {"inner", NFT_PAYLOAD_INNER_HEADER}};
    nftnl_expr_set_u32(x.get(), NFTNL_EXPR_PAYLOAD_BASE, Pick(env, what + ".base", Str(e, "base"), bases));
    nftnl_expr_set_u32(x.get(), NFTNL_EXPR_PAYLOAD_OFFSET, Num(env, e, "offset", what));
    nftnl_expr_set_u32(x.get(), NFTNL_EXPR_PAYLOAD_LEN, Num(env, e, "len", what));
    if (has("dreg") == has("sreg")) Bad(env, what, "payload needs exactly one of dreg (load) or sreg (write)");
    if (has("dreg")) {
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_PAYLOAD_DREG, Reg(env, e, "dreg", what));
    } else {
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_PAYLOAD_SREG, Reg(env, e, "sreg", what));
      static const std::map<std::string, uint32_t> csums = {
          {"none", NFT_PAYLOAD_CSUM_NONE}, {"inet", NFT_PAYLOAD_CSUM_INET}, {"sctp", NFT_PAYLOAD_CSUM_SCTP}};
      uint32_t ct = has("csumType") ? Pick(env, what + ".csumType", Str(e, "csumType"), csums)
                                    : static_cast<uint32_t>(NFT_PAYLOAD_CSUM_NONE);
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_PAYLOAD_CSUM_TYPE, ct);
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_PAYLOAD_CSUM_OFFSET, has("csumOffset") ? Num(env, e, "csumOffset", what) : 0);
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_PAYLOAD_FLAGS, has("csumFlags") ? Num(env, e, "csumFlags", what) : 0);
    }
  } else if (type == "meta") {
    alloc("meta");
    nftnl_expr_set_u32(x.get(), NFTNL_EXPR_META_KEY, MetaKey(env, Str(e, "key"), what));
    if (has("dreg") == has("sreg")) Bad(env, what, "meta needs exactly one of dreg (load) or sreg (set)");
    if (has("dreg"))
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_META_DREG, Reg(env, e, "dreg", what));
    else
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_META_SREG, Reg(env, e, "sreg", what));
  } else if (type == "cmp") {
    alloc("cmp");
    static const std::map<std::string, uint32_t> ops = {{"eq", NFT_CMP_EQ}, {"neq", NFT_CMP_NEQ},
                                                        {"lt", NFT_CMP_LT}, {"lte", NFT_CMP_LTE},
                                                        {"gt", NFT_CMP_GT}, {"gte", NFT_CMP_GTE}};
    nftnl_expr_set_u32(x.get(), NFTNL_EXPR_CMP_SREG, Reg(env, e, "sreg", what));
    nftnl_expr_set_u32(x.get(), NFTNL_EXPR_CMP_OP,
                       has("op") ? Pick(env, what + ".op", Str(e, "op"), ops) : static_cast<uint32_t>(NFT_CMP_EQ));
    auto d = Bytes(env, e.Get("data"), what);
    if (d.empty() || d.size() > 64) Bad(env, what, "cmp data must be 1..64 bytes");
    nftnl_expr_set_data(x.get(), NFTNL_EXPR_CMP_DATA, d.data(), d.size());
  } else if (type == "bitwise") {
    alloc("bitwise");
    nftnl_expr_set_u32(x.get(), NFTNL_EXPR_BITWISE_SREG, Reg(env, e, "sreg", what));
    nftnl_expr_set_u32(x.get(), NFTNL_EXPR_BITWISE_DREG, Reg(env, e, "dreg", what));
    auto mask = Bytes(env, e.Get("mask"), what);
    auto xr = Bytes(env, e.Get("xor"), what);
    if (mask.size() != xr.size() || mask.empty()) Bad(env, what, "bitwise mask and xor must have the same length");
    nftnl_expr_set_u32(x.get(), NFTNL_EXPR_BITWISE_LEN, static_cast<uint32_t>(mask.size()));
    nftnl_expr_set_data(x.get(), NFTNL_EXPR_BITWISE_MASK, mask.data(), mask.size());
    nftnl_expr_set_data(x.get(), NFTNL_EXPR_BITWISE_XOR, xr.data(), xr.size());
  } else if (type == "hash") {
    alloc("hash");
    static const std::map<std::string, uint32_t> kinds = {{"jhash", NFT_HASH_JENKINS}, {"symhash", NFT_HASH_SYM}};
    uint32_t kind = Pick(env, what + ".hashType", has("hashType") ? Str(e, "hashType") : std::string("jhash"), kinds);
    nftnl_expr_set_u32(x.get(), NFTNL_EXPR_HASH_TYPE, kind);
    if (kind == NFT_HASH_JENKINS) {
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_HASH_SREG, Reg(env, e, "sreg", what));
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_HASH_LEN, Num(env, e, "len", what));
      // Always explicit: without a seed the kernel picks a random one per rule.
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_HASH_SEED, Num(env, e, "seed", what));
    }
    uint32_t mod = Num(env, e, "modulus", what);
    if (mod == 0) Bad(env, what, "hash modulus must be at least 1");
    nftnl_expr_set_u32(x.get(), NFTNL_EXPR_HASH_MODULUS, mod);
    if (has("offset")) nftnl_expr_set_u32(x.get(), NFTNL_EXPR_HASH_OFFSET, Num(env, e, "offset", what));
    nftnl_expr_set_u32(x.get(), NFTNL_EXPR_HASH_DREG, Reg(env, e, "dreg", what));
  } else if (type == "lookup") {
    alloc("lookup");
    std::string set = Name(env, e, "set", what);
    nftnl_expr_set_str(x.get(), NFTNL_EXPR_LOOKUP_SET, set.c_str());
    uint32_t id = ctx.SetId(ctx.table, set);
    if (id) nftnl_expr_set_u32(x.get(), NFTNL_EXPR_LOOKUP_SET_ID, id);
    nftnl_expr_set_u32(x.get(), NFTNL_EXPR_LOOKUP_SREG, Reg(env, e, "sreg", what));
    if (has("dreg")) nftnl_expr_set_u32(x.get(), NFTNL_EXPR_LOOKUP_DREG, Reg(env, e, "dreg", what));
    if (has("invert") && Bool(e, "invert")) nftnl_expr_set_u32(x.get(), NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
  } else if (type == "immediate") {
    alloc("immediate");
    uint32_t dreg = Reg(env, e, "dreg", what);
    if (dreg == NFT_REG_VERDICT) Bad(env, what, "use a 'verdict' expression for the verdict register");
    nftnl_expr_set_u32(x.get(), NFTNL_EXPR_IMM_DREG, dreg);
    auto d = Bytes(env, e.Get("data"), what);
    if (d.empty() || d.size() > 64) Bad(env, what, "immediate data must be 1..64 bytes");
    nftnl_expr_set_data(x.get(), NFTNL_EXPR_IMM_DATA, d.data(), d.size());
  } else if (type == "verdict") {
    alloc("immediate");
    int32_t v = Verdict(env, Str(e, "verdict"), what);
    nftnl_expr_set_u32(x.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
    nftnl_expr_set_u32(x.get(), NFTNL_EXPR_IMM_VERDICT, static_cast<uint32_t>(v));
    if (v == NFT_JUMP || v == NFT_GOTO) {
      std::string chain = Name(env, e, "chain", what);
      nftnl_expr_set_str(x.get(), NFTNL_EXPR_IMM_CHAIN, chain.c_str());
    }
  } else if (type == "nat") {
    // snat/dnat to the address in regAddrMin (e.g. loaded by an immediate), or masquerade.
    std::string kind = Str(e, "natType");
    if (kind == "masquerade") {
      alloc("masq");
    } else {
      alloc("nat");
      static const std::map<std::string, uint32_t> kinds = {{"snat", NFT_NAT_SNAT}, {"dnat", NFT_NAT_DNAT}};
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_NAT_TYPE, Pick(env, what + ".natType", kind, kinds));
      static const std::map<std::string, uint32_t> fams = {{"ip", NFPROTO_IPV4}, {"ip6", NFPROTO_IPV6}};
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_NAT_FAMILY, Pick(env, what + ".family", Str(e, "family"), fams));
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_NAT_REG_ADDR_MIN, Reg(env, e, "regAddrMin", what));
    }
  } else if (type == "notrack") {
    alloc("notrack");
  } else if (type == "counter") {
    alloc("counter");
    nftnl_expr_set_u64(x.get(), NFTNL_EXPR_CTR_PACKETS, 0);
    nftnl_expr_set_u64(x.get(), NFTNL_EXPR_CTR_BYTES, 0);
  } else {
    Bad(env, what, "unknown expression type '" + Echo(type) + "'");
  }
  return x.release();
}

// Appends finished messages to op.msg, each as one part with its label.
class Writer {
 public:
  explicit Writer(Op& op) : op_(op) {}
  // A zeroed buffer for one message. libmnl does not bounds-check, so callers size it generously.
  char* Scratch(size_t cap) {
    buf_.assign(cap + 64, 0);
    return buf_.data();
  }
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
            {"postrouting", NF_INET_POST_ROUTING}, {"ingress", NF_INET_INGRESS}};
        uint32_t hook = Pick(env, what + ".hook", Str(c, "hook"), hooks);
        if (family == NFPROTO_NETDEV) {
          if (hook != NF_INET_INGRESS) Bad(env, what, "netdev chains support only the ingress hook");
          hook = NF_NETDEV_INGRESS;
          if (!Has(c, "device")) Bad(env, what, "a netdev ingress chain needs a device");
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
      for (uint32_t i = 0; i < arr.Length(); i++) {
        std::string ew = what + ".exprs[" + std::to_string(i) + "]";
        Napi::Value v = arr.Get(i);
        if (!v.IsObject()) Bad(env, ew, "must be an object");
        nftnl_rule_add_expr(r.get(), BuildExpr(env, v.As<Napi::Object>(), ctx, ew));
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

}  // namespace

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
    struct Counts {
      bool any = false;
      uint64_t packets = 0, bytes = 0;
    } counts;
    nftnl_expr_foreach(
        r.get(),
        [](struct nftnl_expr* e, void* data) -> int {
          auto* c = static_cast<Counts*>(data);
          if (strcmp(nftnl_expr_get_str(e, NFTNL_EXPR_NAME), "counter") == 0) {
            c->any = true;
            c->packets += nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
            c->bytes += nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_BYTES);
          }
          return 0;
        },
        &counts);
    if (counts.any) {
      o.Set("packets", static_cast<double>(counts.packets));
      o.Set("bytes", static_cast<double>(counts.bytes));
    }
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
