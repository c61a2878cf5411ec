// iptables (legacy, x_tables) through libiptc: the iptables backend's rules in a node namespace.
//   'iptc.commit'     replaces the cluster's chain of one table, and its jump rules in built-in
//                     chains (every rule carries the comment match with the cluster's mark), in
//                     one iptc_commit; with `remove`, takes them away instead.
//   'iptc.list'       the chain's rules with their counters and what the library reads back.
//   'clusterip.nodes' reads (and with `nodes`, sets) the CLUSTERIP node numbers this namespace
//                     answers for, through /proc/thread-self/net/ipt_CLUSTERIP/<vip>.
// All of them run on the worker thread, inside the op's namespace (libiptc's socket and the /proc
// file both belong to the namespace of the thread that opens them).
#pragma once

#include <napi.h>

#include <string>

#include "op.h"

namespace nc {

void BuildIptcOp(Napi::Env env, const std::string& type, const Napi::Object& o, Op& op);
// Worker thread, already inside op.ns.
void RunIptc(Op& op);
Napi::Value ParseIptc(Napi::Env env, const Op& op);

}  // namespace nc
