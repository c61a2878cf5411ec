// nftables through libnftnl: one transaction (nfnetlink batch) per 'nft.batch' op, and dumps of a
// table's rules ('nft.list') or a set's elements ('nft.elements').
#pragma once

#include <napi.h>

#include <string>

#include "op.h"

namespace nc {

void BuildNftOp(Napi::Env env, const std::string& type, const Napi::Object& o, Op& op);
Napi::Value ParseNftRules(Napi::Env env, const Op& op);
Napi::Value ParseNftElems(Napi::Env env, const Op& op);
Napi::Value ParseNftTables(Napi::Env env, const Op& op);

}  // namespace nc
