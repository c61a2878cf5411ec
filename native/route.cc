// Routes (IPv4 and IPv6): default and prefix routes, via a gateway and/or out of a device.
#include <linux/rtnetlink.h>

#include "attr.h"

namespace nc {

namespace {
Napi::Object RouteToJs(Napi::Env env, const struct nlmsghdr* nlh) {
  const auto* rtm = static_cast<const struct rtmsg*>(mnl_nlmsg_get_payload(nlh));
  Napi::Object o = Napi::Object::New(env);
  int fam = rtm->rtm_family;
  o.Set("family", fam == AF_INET ? 4 : 6);
  uint32_t table = rtm->rtm_table;
  std::string dst;
  std::string ip;
  uint32_t u32;
  NC_FOR_EACH_ATTR(a, nlh, sizeof(*rtm)) {
    switch (mnl_attr_get_type(a)) {
      case RTA_DST:
        AttrIp(a, fam, &dst);
        break;
      case RTA_GATEWAY:
        if (AttrIp(a, fam, &ip)) o.Set("via", ip);
        break;
      case RTA_PREFSRC:
        if (AttrIp(a, fam, &ip)) o.Set("source", ip);
        break;
      case RTA_OIF:
        if (AttrU32(a, &u32)) o.Set("index", u32);
        break;
      case RTA_PRIORITY:
        if (AttrU32(a, &u32)) o.Set("metric", u32);
        break;
      case RTA_TABLE:
        AttrU32(a, &table);
        break;
    }
  }
  o.Set("destination",
        dst.empty() && rtm->rtm_dst_len == 0 ? "default" : dst + "/" + std::to_string(rtm->rtm_dst_len));
  o.Set("table", table);
  o.Set("type", rtm->rtm_type == RTN_LOCAL       ? "local"
                : rtm->rtm_type == RTN_BROADCAST ? "broadcast"
                : rtm->rtm_type == RTN_MULTICAST ? "multicast"
                : rtm->rtm_type == RTN_BLACKHOLE ? "blackhole"
                : rtm->rtm_type == RTN_UNREACHABLE ? "unreachable"
                                                  : "unicast");
  o.Set("protocol", rtm->rtm_protocol);
  o.Set("scope", rtm->rtm_scope == RT_SCOPE_HOST   ? "host"
                 : rtm->rtm_scope == RT_SCOPE_LINK ? "link"
                                                   : "global");
  return o;
}
}  // namespace

void BuildRouteOp(Napi::Env env, const std::string& type, const Napi::Object& o, Op& op) {
  op.protocol = NETLINK_ROUTE;
  if (type == "route.list") {
    MsgBuilder b(RTM_GETROUTE, NLM_F_DUMP);
    auto* rtm = b.Extra<struct rtmsg>();
    rtm->rtm_family = IpFamily(o, "family");
    op.syscall = "RTM_GETROUTE";
    op.dump = true;
    op.parse = Parse::Routes;
    b.Finish(op);
    return;
  }
  if (type != "route.add" && type != "route.del") ArgError(env, false, "type", "unknown op type '" + Echo(type) + "'");
  bool add = type == "route.add";
  std::string dstText = Str(o, "destination");
  IpAddr dst;
  bool isDefault = dstText == "default";
  IpAddr via;
  bool hasVia = Has(o, "via");
  if (hasVia) via = ParseIp(env, "via", Str(o, "via"), false);
  if (isDefault) {
    uint8_t f = IpFamily(o, "family");
    dst.family = hasVia ? via.family : (f == AF_INET6 ? AF_INET6 : AF_INET);
    dst.prefix = 0;
  } else {
    dst = ParseIp(env, "destination", dstText, true);
    uint8_t f = IpFamily(o, "family");
    if (f != AF_UNSPEC && f != dst.family)
      ArgError(env, false, "family", "does not match the destination's family");
  }
  if (hasVia && via.family != dst.family)
    ArgError(env, false, "via", "the gateway and the destination must be of the same family");
  // replace: NLM_F_REPLACE swaps the route to this destination (same table and metric) in one step.
  bool replace = add && Has(o, "replace") && o.Get("replace").ToBoolean();
  MsgBuilder b(add ? RTM_NEWROUTE : RTM_DELROUTE, add ? (NLM_F_CREATE | (replace ? NLM_F_REPLACE : NLM_F_EXCL)) : 0);
  auto* rtm = b.Extra<struct rtmsg>();
  rtm->rtm_family = static_cast<uint8_t>(dst.family);
  rtm->rtm_dst_len = static_cast<uint8_t>(dst.prefix);
  uint32_t table = Has(o, "table") ? U32(o, "table") : static_cast<uint32_t>(RT_TABLE_MAIN);
  rtm->rtm_table = table < 256 ? static_cast<uint8_t>(table) : static_cast<uint8_t>(RT_TABLE_UNSPEC);
  // The route's origin (rtm_protocol): who made it. On delete, only a route of that origin matches.
  uint32_t proto = Has(o, "protocol") ? U32(o, "protocol") : 0;
  if (proto > 255) ArgError(env, false, "protocol", "must be 0 to 255");
  if (!add) rtm->rtm_protocol = static_cast<uint8_t>(proto);
  if (add) {
    rtm->rtm_protocol = proto ? static_cast<uint8_t>(proto) : RTPROT_STATIC;
    rtm->rtm_type = RTN_UNICAST;
    rtm->rtm_scope = hasVia ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  } else {
    rtm->rtm_scope = RT_SCOPE_NOWHERE;
  }
  if (table >= 256) mnl_attr_put_u32(b.nlh(), RTA_TABLE, table);
  if (!isDefault) mnl_attr_put(b.nlh(), RTA_DST, dst.len(), dst.bytes);
  if (hasVia) mnl_attr_put(b.nlh(), RTA_GATEWAY, via.len(), via.bytes);
  if (Has(o, "dev")) {
    LinkRef dev = GetLinkRef(o, "dev");
    if (dev.name.empty()) {
      mnl_attr_put_u32(b.nlh(), RTA_OIF, dev.index);
    } else {
      b.PutIfindexOf(op, RTA_OIF, dev.name);
    }
  }
  if (Has(o, "metric")) mnl_attr_put_u32(b.nlh(), RTA_PRIORITY, U32(o, "metric"));
  if (Has(o, "source")) {
    IpAddr src = ParseIp(env, "source", Str(o, "source"), false);
    mnl_attr_put(b.nlh(), RTA_PREFSRC, src.len(), src.bytes);
  }
  op.syscall = add ? "RTM_NEWROUTE" : "RTM_DELROUTE";
  op.label = "route " + Echo(dstText) + (hasVia ? " via " + Echo(Str(o, "via")) : "") +
             (Has(o, "dev") ? " dev " + GetLinkRef(o, "dev").Describe() : "");
  b.Finish(op);
}

Napi::Value ParseRoutes(Napi::Env env, const Op& op) {
  Napi::Array arr = Napi::Array::New(env);
  uint32_t n = 0;
  for (const auto& r : op.replies) {
    const auto* nlh = reinterpret_cast<const struct nlmsghdr*>(r.data());
    if (nlh->nlmsg_type != RTM_NEWROUTE || !HasHeader(nlh, sizeof(struct rtmsg))) continue;
    // Only IP routes: an unspecified-family dump also returns multicast (RTNL_FAMILY_IPMR/IP6MR)
    // and MPLS routes, whose attributes are not IP prefixes.
    const auto* rtm = static_cast<const struct rtmsg*>(mnl_nlmsg_get_payload(nlh));
    if (rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6) continue;
    arr.Set(n++, RouteToJs(env, nlh));
  }
  return arr;
}

}  // namespace nc
