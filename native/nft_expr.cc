// One nftables expression from its op object: payload, meta, cmp, bitwise, hash, lookup,
// immediate, counter, nat…, as libnftnl builds them.
#include <arpa/inet.h>
#include <net/if.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <errno.h>
#include <string.h>

#include <cmath>

#include "errors.h"
#include "nft_internal.h"

namespace nc::nftimpl {

nftnl_expr* BuildExpr(Napi::Env env, const Napi::Object& e, const Ctx& ctx, const std::string& what) {
  std::string type = Str(e, "type");
  auto has = [&](const char* k) { return Has(e, k); };
  ExprPtr x;
  auto alloc = [&](const char* name) {
    x.reset(nftnl_expr_alloc(name));
    if (!x) throw KernelError(env, ENOMEM, "nftnl_alloc", "", "");
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
    if (has("ifindexOf")) {
      // The index of a link in the table's namespace, looked up when the transaction is sent (the
      // link may be made earlier in the same job): a placeholder here, patched by the worker.
      if (has("data")) Bad(env, what, "immediate takes data or ifindexOf, not both");
      std::string name = Str(e, "ifindexOf");
      if (name.empty() || name.size() >= IFNAMSIZ) Bad(env, what, "ifindexOf must be a link name of 1..15 bytes");
      uint32_t placeholder = 0;
      nftnl_expr_set_data(x.get(), NFTNL_EXPR_IMM_DATA, &placeholder, sizeof(placeholder));
    } else {
      auto d = Bytes(env, e.Get("data"), what);
      if (d.empty() || d.size() > 64) Bad(env, what, "immediate data must be 1..64 bytes");
      nftnl_expr_set_data(x.get(), NFTNL_EXPR_IMM_DATA, d.data(), d.size());
    }
  } else if (type == "fwd") {
    // netdev family: the packet leaves through the link whose index is in sreg (NF_STOLEN).
    alloc("fwd");
    nftnl_expr_set_u32(x.get(), NFTNL_EXPR_FWD_SREG_DEV, Reg(env, e, "sreg", what));
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
    // Starting values (a counter carried over when its table is replaced), else 0.
    auto start = [&](const char* key) -> uint64_t {
      if (!Has(e, key)) return 0;
      Napi::Value v = e.Get(key);
      double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
      if (d < 0 || d > 9007199254740991.0 || std::floor(d) != d) Bad(env, what, std::string(key) + " must be an integer 0..2^53-1");
      return static_cast<uint64_t>(d);
    };
    nftnl_expr_set_u64(x.get(), NFTNL_EXPR_CTR_PACKETS, start("packets"));
    nftnl_expr_set_u64(x.get(), NFTNL_EXPR_CTR_BYTES, start("bytes"));
  } else {
    Bad(env, what, "unknown expression type '" + Echo(type) + "'");
  }
  return x.release();
}

}  // namespace nc::nftimpl
