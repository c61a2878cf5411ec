// Shared by the nftables sources: argument readers for op objects (nft_args.cc), expression
// building (nft_expr.cc), transactions (nft.cc) and dumps (nft_dump.cc).
#pragma once

#include <napi.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
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
#include "op.h"

namespace nc::nftimpl {

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

[[noreturn]] void Bad(Napi::Env env, const std::string& what, const std::string& msg);

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

std::string Name(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what);
uint32_t Family(Napi::Env env, const Napi::Object& o, const std::string& what);
uint32_t Num(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what);
std::vector<uint8_t> Hex(Napi::Env env, const std::string& s, const std::string& what);
std::vector<uint8_t> Bytes(Napi::Env env, const Napi::Value& v, const std::string& what);
std::string Comment(Napi::Env env, const Napi::Object& o, const std::string& what);
bool BoolArg(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what);
uint64_t Handle(Napi::Env env, const Napi::Object& o, const std::string& what);
Napi::Object ObjArg(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what);
int32_t Verdict(Napi::Env env, const std::string& v, const std::string& what);
uint32_t Reg(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what);
uint32_t MetaKey(Napi::Env env, const std::string& k, const std::string& what);

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

// One expression of a rule, from its op object (e.g. { type: 'payload', base, offset, len, dreg }).
nftnl_expr* BuildExpr(Napi::Env env, const Napi::Object& e, const Ctx& ctx, const std::string& what);

// Dump requests (nft_dump.cc).
void BuildList(Napi::Env env, const Napi::Object& o, Op& op);
void BuildTableList(Napi::Env env, const Napi::Object& o, Op& op);
void BuildElemList(Napi::Env env, const Napi::Object& o, Op& op);

}  // namespace nc::nftimpl
