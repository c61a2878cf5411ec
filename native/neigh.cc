// Neighbour (ARP / NDP) entries: permanent add, delete, list.
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>

#include <algorithm>

#include "attr.h"

namespace nc {

namespace {
std::string StateName(uint16_t s) {
  if (s & NUD_PERMANENT) return "permanent";
  if (s & NUD_NOARP) return "noarp";
  if (s & NUD_REACHABLE) return "reachable";
  if (s & NUD_STALE) return "stale";
  if (s & NUD_DELAY) return "delay";
  if (s & NUD_PROBE) return "probe";
  if (s & NUD_FAILED) return "failed";
  if (s & NUD_INCOMPLETE) return "incomplete";
  return "none";
}

Napi::Object NeighToJs(Napi::Env env, const struct nlmsghdr* nlh) {
  const auto* nd = static_cast<const struct ndmsg*>(mnl_nlmsg_get_payload(nlh));
  Napi::Object o = Napi::Object::New(env);
  o.Set("family", nd->ndm_family == AF_INET ? 4 : 6);
  o.Set("index", nd->ndm_ifindex);
  o.Set("state", StateName(nd->ndm_state));
  std::string ip;
  NC_FOR_EACH_ATTR(a, nlh, sizeof(*nd)) {
    switch (mnl_attr_get_type(a)) {
      case NDA_DST:
        if (AttrIp(a, nd->ndm_family, &ip)) o.Set("address", ip);
        break;
      case NDA_LLADDR:
        o.Set("mac", FormatMac(static_cast<const uint8_t*>(mnl_attr_get_payload(a)),
                               std::min<size_t>(mnl_attr_get_payload_len(a), 32)));
        break;
    }
  }
  return o;
}
}  // namespace

void BuildNeighOp(Napi::Env env, const std::string& type, const Napi::Object& o, Op& op) {
  op.protocol = NETLINK_ROUTE;
  if (type == "neigh.list") {
    MsgBuilder b(RTM_GETNEIGH, NLM_F_DUMP);
    auto* nd = b.Extra<struct ndmsg>();
    nd->ndm_family = IpFamily(o, "family");
    op.syscall = "RTM_GETNEIGH";
    op.dump = true;
    op.parse = Parse::Neighs;
    b.Finish(op);
    return;
  }
  if (type != "neigh.add" && type != "neigh.del") ArgError(env, false, "type", "unknown op type '" + Echo(type) + "'");
  bool add = type == "neigh.add";
  LinkRef link = GetLinkRef(o, "link");
  IpAddr ip = ParseIp(env, "address", Str(o, "address"), false);
  MsgBuilder b(add ? RTM_NEWNEIGH : RTM_DELNEIGH, add ? (NLM_F_CREATE | NLM_F_REPLACE) : 0);
  auto* nd = b.Extra<struct ndmsg>();
  nd->ndm_family = static_cast<uint8_t>(ip.family);
  nd->ndm_state = NUD_PERMANENT;
  SetIndexField(b, op, reinterpret_cast<uint32_t*>(&nd->ndm_ifindex), link);
  mnl_attr_put(b.nlh(), NDA_DST, ip.len(), ip.bytes);
  if (add) {
    uint8_t mac[6];
    ParseMac(env, "mac", Str(o, "mac"), mac);
    mnl_attr_put(b.nlh(), NDA_LLADDR, 6, mac);
  }
  op.syscall = add ? "RTM_NEWNEIGH" : "RTM_DELNEIGH";
  op.label = Echo(Str(o, "address")) + " on " + link.Describe();
  b.Finish(op);
}

Napi::Value ParseNeighs(Napi::Env env, const Op& op) {
  Napi::Array arr = Napi::Array::New(env);
  uint32_t n = 0;
  for (const auto& r : op.replies) {
    const auto* nlh = reinterpret_cast<const struct nlmsghdr*>(r.data());
    if (nlh->nlmsg_type != RTM_NEWNEIGH || !HasHeader(nlh, sizeof(struct ndmsg))) continue;
    // Only ARP/NDP entries: an unspecified-family dump also returns bridge FDB entries.
    const auto* nd = static_cast<const struct ndmsg*>(mnl_nlmsg_get_payload(nlh));
    if (nd->ndm_family != AF_INET && nd->ndm_family != AF_INET6) continue;
    arr.Set(n++, NeighToJs(env, nlh));
  }
  return arr;
}

}  // namespace nc
