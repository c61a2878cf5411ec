// Addresses (IPv4 and IPv6) on a link: add, delete, list.
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>

#include "attr.h"

namespace nc {

namespace {
Napi::Object AddrToJs(Napi::Env env, const struct nlmsghdr* nlh) {
  const auto* ifa = static_cast<const struct ifaddrmsg*>(mnl_nlmsg_get_payload(nlh));
  Napi::Object o = Napi::Object::New(env);
  o.Set("family", ifa->ifa_family == AF_INET ? 4 : 6);
  o.Set("index", ifa->ifa_index);
  o.Set("prefixLength", ifa->ifa_prefixlen);
  uint32_t flags = ifa->ifa_flags;
  std::string local, address, label;
  NC_FOR_EACH_ATTR(a, nlh, sizeof(*ifa)) {
    switch (mnl_attr_get_type(a)) {
      case IFA_LOCAL:
        AttrIp(a, ifa->ifa_family, &local);
        break;
      case IFA_ADDRESS:
        AttrIp(a, ifa->ifa_family, &address);
        break;
      case IFA_LABEL:
        if (AttrStr(a, &label)) o.Set("label", label);
        break;
      case IFA_FLAGS:
        AttrU32(a, &flags);
        break;
    }
  }
  // For IPv4 IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer on p2p links).
  std::string own = local.empty() ? address : local;
  o.Set("address", own);
  o.Set("cidr", own + "/" + std::to_string(ifa->ifa_prefixlen));
  o.Set("nodad", (flags & IFA_F_NODAD) != 0);
  o.Set("tentative", (flags & IFA_F_TENTATIVE) != 0);
  o.Set("scope", ifa->ifa_scope == RT_SCOPE_HOST ? "host"
                 : ifa->ifa_scope == RT_SCOPE_LINK ? "link"
                                                   : "global");
  return o;
}
}  // namespace

void BuildAddrOp(Napi::Env env, const std::string& type, const Napi::Object& o, Op& op) {
  op.protocol = NETLINK_ROUTE;
  if (type == "addr.list") {
    MsgBuilder b(RTM_GETADDR, NLM_F_DUMP);
    auto* ifa = b.Extra<struct ifaddrmsg>();
    ifa->ifa_family = IpFamily(o, "family");
    op.syscall = "RTM_GETADDR";
    op.dump = true;
    op.parse = Parse::Addrs;
    b.Finish(op);
    return;
  }
  if (type != "addr.add" && type != "addr.del") ArgError(env, false, "type", "unknown op type '" + Echo(type) + "'");
  bool add = type == "addr.add";
  LinkRef link = GetLinkRef(o, "link");
  IpAddr ip = ParseIp(env, "address", Str(o, "address"), true);
  MsgBuilder b(add ? RTM_NEWADDR : RTM_DELADDR, add ? (NLM_F_CREATE | NLM_F_EXCL) : 0);
  auto* ifa = b.Extra<struct ifaddrmsg>();
  ifa->ifa_family = static_cast<uint8_t>(ip.family);
  ifa->ifa_prefixlen = static_cast<uint8_t>(ip.prefix);
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  SetIndexField(b, op, &ifa->ifa_index, link);
  mnl_attr_put(b.nlh(), IFA_LOCAL, ip.len(), ip.bytes);
  mnl_attr_put(b.nlh(), IFA_ADDRESS, ip.len(), ip.bytes);
  if (add && ip.family == AF_INET && ip.prefix < 31) {
    // The broadcast address, as `ip addr add ... brd +` would set it.
    uint8_t brd[4];
    uint32_t host = ip.prefix == 0 ? 0xffffffffu : (0xffffffffu >> ip.prefix);
    for (int i = 0; i < 4; i++) brd[i] = ip.bytes[i] | static_cast<uint8_t>(host >> (24 - 8 * i));
    mnl_attr_put(b.nlh(), IFA_BROADCAST, 4, brd);
  }
  uint32_t flags = 0;
  if (Has(o, "nodad") && Bool(o, "nodad")) flags |= IFA_F_NODAD;
  if (Has(o, "noprefixroute") && Bool(o, "noprefixroute")) flags |= IFA_F_NOPREFIXROUTE;
  if (flags) {
    ifa->ifa_flags = static_cast<uint8_t>(flags & 0xff);
    mnl_attr_put_u32(b.nlh(), IFA_FLAGS, flags);
  }
  op.syscall = add ? "RTM_NEWADDR" : "RTM_DELADDR";
  op.label = Echo(Str(o, "address")) + " on " + link.Describe();
  b.Finish(op);
}

Napi::Value ParseAddrs(Napi::Env env, const Op& op) {
  Napi::Array arr = Napi::Array::New(env);
  uint32_t n = 0;
  for (const auto& r : op.replies) {
    const auto* nlh = reinterpret_cast<const struct nlmsghdr*>(r.data());
    if (nlh->nlmsg_type != RTM_NEWADDR || !HasHeader(nlh, sizeof(struct ifaddrmsg))) continue;
    const auto* ifa = static_cast<const struct ifaddrmsg*>(mnl_nlmsg_get_payload(nlh));
    if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6) continue;  // only IP addresses
    arr.Set(n++, AddrToJs(env, nlh));
  }
  return arr;
}

}  // namespace nc
