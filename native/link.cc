// Links: veth pairs (peer created directly in another namespace), bridges, dummies; set, delete,
// get and list.
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if_arp.h>

#include <algorithm>

#include "attr.h"
#include "netns.h"

namespace nc {

namespace {

void PutCommonAttrs(Napi::Env env, MsgBuilder& b, Op& op, const Napi::Object& o) {
  if (Has(o, "mac")) {
    uint8_t mac[6];
    ParseMac(env, "mac", Str(o, "mac"), mac);
    mnl_attr_put(b.nlh(), IFLA_ADDRESS, 6, mac);
  }
  if (Has(o, "mtu")) mnl_attr_put_u32(b.nlh(), IFLA_MTU, U32(o, "mtu"));
  if (Has(o, "txqueuelen")) mnl_attr_put_u32(b.nlh(), IFLA_TXQLEN, U32(o, "txqueuelen"));
}

void PutNetns(MsgBuilder& b, Op& op, const Napi::Value& v, const char* field) {
  NsPtr ns = NsFromJs(v, field);
  if (!ns) return;
  if (!ns->reserved && ns->fd < 0) ArgError(v.Env(), false, field, "this namespace handle has no open file (the caller's own namespace: open it with Netns.open())");
  b.PutNsFd(op, IFLA_NET_NS_FD, ns);
}

void PutMaster(MsgBuilder& b, Op& op, const Napi::Object& o) {
  if (!o.Has("master")) return;
  Napi::Value m = o.Get("master");
  if (m.IsUndefined()) return;
  if (m.IsNull()) {
    mnl_attr_put_u32(b.nlh(), IFLA_MASTER, 0);  // nomaster
    return;
  }
  LinkRef ref = GetLinkRef(o, "master");
  if (ref.name.empty()) {
    mnl_attr_put_u32(b.nlh(), IFLA_MASTER, ref.index);
  } else {
    b.PutIfindexOf(op, IFLA_MASTER, ref.name);
  }
}

void SetUpFlag(struct ifinfomsg* ifm, const Napi::Object& o) {
  if (!Has(o, "up")) return;
  ifm->ifi_change |= IFF_UP;
  if (Bool(o, "up")) ifm->ifi_flags |= IFF_UP;
}

void BuildAdd(Napi::Env env, const Napi::Object& o, Op& op) {
  std::string kind = ShortStr(o, "kind");
  std::string name = IfName(o, "name");
  if (Has(o, "alias")) {
    op.alias = AliasStr(o, "alias", false);
    op.setAlias = true;
  }
  // NLM_F_ECHO: the kernel sends the new link back (with its index), so the alias is set on
  // exactly the link this request made.
  MsgBuilder b(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | (op.setAlias ? NLM_F_ECHO : 0));
  auto* ifm = b.Extra<struct ifinfomsg>();
  ifm->ifi_family = AF_UNSPEC;
  if (Has(o, "index")) ifm->ifi_index = static_cast<int>(U32(o, "index"));
  SetUpFlag(ifm, o);
  mnl_attr_put_strz(b.nlh(), IFLA_IFNAME, name.c_str());
  PutCommonAttrs(env, b, op, o);
  PutMaster(b, op, o);
  struct nlattr* info = mnl_attr_nest_start(b.nlh(), IFLA_LINKINFO);
  mnl_attr_put_strz(b.nlh(), IFLA_INFO_KIND, kind.c_str());
  op.label = kind + " '" + name + "'";
  op.linkName = name;
  if (kind == "veth") {
    if (!o.Get("peer").IsObject()) ArgError(env, true, "peer", "a veth needs a peer object such as { name }");
    Napi::Object peer = o.Get("peer").As<Napi::Object>();
    std::string peerName = IfName(peer, "name");
    struct nlattr* data = mnl_attr_nest_start(b.nlh(), IFLA_INFO_DATA);
    struct nlattr* p = mnl_attr_nest_start(b.nlh(), VETH_INFO_PEER);
    auto* pifm = b.Extra<struct ifinfomsg>();
    pifm->ifi_family = AF_UNSPEC;
    if (Has(peer, "index")) pifm->ifi_index = static_cast<int>(U32(peer, "index"));
    if (Has(peer, "alias")) {
      if (Has(peer, "netns"))
        ArgError(env, false, "peer.alias",
                 "cannot be set while creating a peer in another namespace; set it there with link.set");
      op.peerAlias = AliasStr(peer, "alias", false);
      op.setPeerAlias = true;
      b.nlh()->nlmsg_flags |= NLM_F_ECHO;
    }
    // The peer cannot be brought up here: veth_open fails with ENOTCONN until both ends are
    // linked. The TypeScript layer sets it up with a separate request.
    mnl_attr_put_strz(b.nlh(), IFLA_IFNAME, peerName.c_str());
    PutCommonAttrs(env, b, op, peer);
    PutNetns(b, op, peer.Get("netns"), "peer.netns");
    mnl_attr_nest_end(b.nlh(), p);
    mnl_attr_nest_end(b.nlh(), data);
    op.label += " (peer '" + peerName + "')";
  } else if (kind == "bridge" && Has(o, "bridge")) {
    if (!o.Get("bridge").IsObject()) ArgError(env, true, "bridge", "bridge options must be an object");
    Napi::Object br = o.Get("bridge").As<Napi::Object>();
    struct nlattr* data = mnl_attr_nest_start(b.nlh(), IFLA_INFO_DATA);
    if (Has(br, "mcastSnooping"))
      mnl_attr_put_u8(b.nlh(), IFLA_BR_MCAST_SNOOPING, Bool(br, "mcastSnooping") ? 1 : 0);
    // Only sent to turn filtering on: kernels built without CONFIG_BRIDGE_VLAN_FILTERING reject
    // the attribute even when it asks for the default (off).
    if (Has(br, "vlanFiltering") && Bool(br, "vlanFiltering"))
      mnl_attr_put_u8(b.nlh(), IFLA_BR_VLAN_FILTERING, 1);
    if (Has(br, "stp")) mnl_attr_put_u32(b.nlh(), IFLA_BR_STP_STATE, Bool(br, "stp") ? 1 : 0);
    if (Has(br, "forwardDelay"))
      mnl_attr_put_u32(b.nlh(), IFLA_BR_FORWARD_DELAY, U32(br, "forwardDelay"));
    mnl_attr_nest_end(b.nlh(), data);
  }
  mnl_attr_nest_end(b.nlh(), info);
  b.Finish(op);
}

void BuildSet(Napi::Env env, const Napi::Object& o, Op& op) {
  LinkRef ref = GetLinkRef(o, "link");
  // A bridge port's own options travel as slave data in IFLA_LINKINFO, which only RTM_NEWLINK
  // (without NLM_F_CREATE: a change to an existing link) reads.
  bool port = Has(o, "bridgePort");
  MsgBuilder b(port ? RTM_NEWLINK : RTM_SETLINK, 0);
  auto* ifm = b.Extra<struct ifinfomsg>();
  ifm->ifi_family = AF_UNSPEC;
  SetUpFlag(ifm, o);
  if (Has(o, "name")) {
    // A rename names the link by index; the new name goes in IFLA_IFNAME.
    SetIndexField(b, op, reinterpret_cast<uint32_t*>(&ifm->ifi_index), ref);
    mnl_attr_put_strz(b.nlh(), IFLA_IFNAME, IfName(o, "name").c_str());
    op.invalidatesNames = true;
  } else {
    PutLinkRef(b, ifm, ref);
  }
  PutCommonAttrs(env, b, op, o);
  PutMaster(b, op, o);
  // An empty alias removes it.
  if (Has(o, "alias")) {
    std::string alias = AliasStr(o, "alias", true);
    mnl_attr_put(b.nlh(), IFLA_IFALIAS, alias.size(), alias.data());
  }
  if (Has(o, "moveTo")) {
    PutNetns(b, op, o.Get("moveTo"), "moveTo");
    op.invalidatesNames = true;
  }
  if (port) {
    Napi::Value v = o.Get("bridgePort");
    if (!v.IsObject()) ArgError(env, true, "bridgePort", "must be an object such as { unicastFlood: false }");
    Napi::Object bp = v.As<Napi::Object>();
    struct nlattr* info = mnl_attr_nest_start(b.nlh(), IFLA_LINKINFO);
    struct nlattr* data = mnl_attr_nest_start(b.nlh(), IFLA_INFO_SLAVE_DATA);
    if (Has(bp, "unicastFlood")) mnl_attr_put_u8(b.nlh(), IFLA_BRPORT_UNICAST_FLOOD, Bool(bp, "unicastFlood") ? 1 : 0);
    mnl_attr_nest_end(b.nlh(), data);
    mnl_attr_nest_end(b.nlh(), info);
  }
  op.label = "link " + ref.Describe();
  b.Finish(op);
}

void BuildDel(const Napi::Object& o, Op& op) {
  LinkRef ref = GetLinkRef(o, "link");
  MsgBuilder b(RTM_DELLINK, 0);
  auto* ifm = b.Extra<struct ifinfomsg>();
  ifm->ifi_family = AF_UNSPEC;
  PutLinkRef(b, ifm, ref);
  op.label = "link " + ref.Describe();
  op.invalidatesNames = true;
  b.Finish(op);
}

void BuildGet(const Napi::Object& o, Op& op, bool dump) {
  MsgBuilder b(RTM_GETLINK, dump ? NLM_F_DUMP : 0);
  auto* ifm = b.Extra<struct ifinfomsg>();
  ifm->ifi_family = AF_UNSPEC;
  if (!dump) {
    LinkRef ref = GetLinkRef(o, "link");
    PutLinkRef(b, ifm, ref);
    op.label = "link " + ref.Describe();
  }
  mnl_attr_put_u32(b.nlh(), IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  op.dump = dump;
  op.parse = dump ? Parse::Links : Parse::Link;
  b.Finish(op);
}

const char* OperState(uint8_t s) {
  static const char* names[] = {"unknown", "notpresent", "down", "lowerlayerdown",
                                "testing", "dormant",    "up"};
  return s < 7 ? names[s] : "unknown";
}

Napi::Object LinkToJs(Napi::Env env, const struct nlmsghdr* nlh) {
  const auto* ifi = static_cast<const struct ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
  Napi::Object o = Napi::Object::New(env);
  o.Set("index", ifi->ifi_index);
  o.Set("up", (ifi->ifi_flags & IFF_UP) != 0);
  o.Set("flags", ifi->ifi_flags);
  std::string kind, str;
  uint32_t u32;
  uint8_t u8;
  NC_FOR_EACH_ATTR(a, nlh, sizeof(*ifi)) {
    switch (mnl_attr_get_type(a)) {
      case IFLA_IFNAME:
        if (AttrStr(a, &str)) o.Set("name", str);
        break;
      case IFLA_IFALIAS:
        if (AttrStr(a, &str)) o.Set("alias", str);
        break;
      case IFLA_ADDRESS:
        o.Set("mac", FormatMac(static_cast<const uint8_t*>(mnl_attr_get_payload(a)),
                               std::min<size_t>(mnl_attr_get_payload_len(a), 32)));
        break;
      case IFLA_MTU:
        if (AttrU32(a, &u32)) o.Set("mtu", u32);
        break;
      case IFLA_MASTER:
        if (AttrU32(a, &u32)) o.Set("master", u32);
        break;
      case IFLA_OPERSTATE:
        if (AttrU8(a, &u8)) o.Set("state", OperState(u8));
        break;
      case IFLA_LINK:
        if (AttrU32(a, &u32)) o.Set("peerIndex", u32);
        break;
      case IFLA_LINK_NETNSID:
        if (AttrU32(a, &u32)) o.Set("peerNetnsId", static_cast<int32_t>(u32));
        break;
      case IFLA_LINKINFO: {
        if (mnl_attr_validate(a, MNL_TYPE_NESTED) < 0) break;
        std::string slaveKind;
        const struct nlattr* slaveData = nullptr;
        NC_FOR_EACH_NESTED(i, a) {
          if (mnl_attr_get_type(i) == IFLA_INFO_KIND) AttrStr(i, &kind);
          if (mnl_attr_get_type(i) == IFLA_INFO_SLAVE_KIND) AttrStr(i, &slaveKind);
          if (mnl_attr_get_type(i) == IFLA_INFO_SLAVE_DATA && mnl_attr_validate(i, MNL_TYPE_NESTED) == 0) slaveData = i;
        }
        // A bridge port: the options the library sets on it.
        if (slaveKind == "bridge" && slaveData) {
          Napi::Object bp = Napi::Object::New(env);
          NC_FOR_EACH_NESTED(j, slaveData) {
            if (mnl_attr_get_type(j) == IFLA_BRPORT_UNICAST_FLOOD && AttrU8(j, &u8)) bp.Set("unicastFlood", u8 != 0);
          }
          o.Set("bridgePort", bp);
        }
        break;
      }
    }
  }
  if (kind.empty()) kind = ifi->ifi_type == ARPHRD_LOOPBACK ? "loopback" : "device";
  o.Set("kind", kind);
  return o;
}

}  // namespace

void BuildAliasSet(Op& op, uint32_t index, const std::string& alias) {
  MsgBuilder b(RTM_SETLINK, 0);
  auto* ifm = b.Extra<struct ifinfomsg>();
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = static_cast<int>(index);
  mnl_attr_put(b.nlh(), IFLA_IFALIAS, alias.size(), alias.data());
  b.Finish(op);
}

bool EchoedLink(const Op& op, uint32_t* index, uint32_t* peerIndex) {
  for (const auto& r : op.replies) {
    const auto* nlh = reinterpret_cast<const struct nlmsghdr*>(r.data());
    if (nlh->nlmsg_type != RTM_NEWLINK || nlh->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg))) continue;
    const auto* ifi = static_cast<const struct ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
    *index = static_cast<uint32_t>(ifi->ifi_index);
    *peerIndex = 0;
    bool otherNs = false;
    NC_FOR_EACH_ATTR(a, nlh, sizeof(*ifi)) {
      if (mnl_attr_get_type(a) == IFLA_LINK && mnl_attr_validate(a, MNL_TYPE_U32) == 0) *peerIndex = mnl_attr_get_u32(a);
      if (mnl_attr_get_type(a) == IFLA_LINK_NETNSID) otherNs = true;
    }
    if (otherNs) *peerIndex = 0;
    return *index != 0;
  }
  return false;
}

void BuildGetByName(Op& op, const std::string& name) {
  MsgBuilder b(RTM_GETLINK, 0);
  auto* ifm = b.Extra<struct ifinfomsg>();
  ifm->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(b.nlh(), IFLA_IFNAME, name.c_str());
  mnl_attr_put_u32(b.nlh(), IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  b.Finish(op);
}

bool LinkHasAlias(const Op& op) {
  for (const auto& r : op.replies) {
    const auto* nlh = reinterpret_cast<const struct nlmsghdr*>(r.data());
    if (nlh->nlmsg_type != RTM_NEWLINK || nlh->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg))) continue;
    NC_FOR_EACH_ATTR(a, nlh, sizeof(struct ifinfomsg)) {
      if (mnl_attr_get_type(a) == IFLA_IFALIAS && mnl_attr_get_payload_len(a) > 0) return true;
    }
    return false;
  }
  return false;
}

void BuildLinkOp(Napi::Env env, const std::string& type, const Napi::Object& o, Op& op) {
  op.protocol = NETLINK_ROUTE;
  if (type != "link.add" && type != "link.set" && type != "link.del" && type != "link.get" && type != "link.list")
    ArgError(env, false, "type", "unknown op type '" + Echo(type) + "'");
  if (type == "link.add") {
    op.syscall = "RTM_NEWLINK";
    BuildAdd(env, o, op);
  } else if (type == "link.set") {
    op.syscall = "RTM_SETLINK";
    BuildSet(env, o, op);
  } else if (type == "link.del") {
    op.syscall = "RTM_DELLINK";
    BuildDel(o, op);
  } else if (type == "link.get") {
    op.syscall = "RTM_GETLINK";
    BuildGet(o, op, false);
  } else {
    op.syscall = "RTM_GETLINK";
    BuildGet(o, op, true);
  }
}

Napi::Value ParseLinks(Napi::Env env, const Op& op, bool single) {
  Napi::Array arr = Napi::Array::New(env);
  uint32_t n = 0;
  for (const auto& r : op.replies) {
    const auto* nlh = reinterpret_cast<const struct nlmsghdr*>(r.data());
    if (nlh->nlmsg_type != RTM_NEWLINK || !HasHeader(nlh, sizeof(struct ifinfomsg))) continue;
    if (single) return LinkToJs(env, nlh);
    arr.Set(n++, LinkToJs(env, nlh));
  }
  return single ? env.Null() : arr;
}

}  // namespace nc

// Namespace ids: the id by which this namespace refers to another one (IFLA_LINK_NETNSID of a veth
// whose peer lives there). Lets the TypeScript layer name a link's peer namespace.
#include <linux/net_namespace.h>

namespace nc {

void BuildNsIdOp(const Napi::Object& o, Op& op) {
  op.protocol = NETLINK_ROUTE;
  NsPtr target = NsFromJs(o.Get("target"), "target");
  if (!target || (!target->reserved && target->fd < 0)) ArgError(o.Env(), true, "target", "must be a namespace handle with an open file");
  MsgBuilder b(RTM_GETNSID, 0);
  auto* g = b.Extra<struct rtgenmsg>();
  g->rtgen_family = AF_UNSPEC;
  b.PutNsFd(op, NETNSA_FD, target);
  op.syscall = "RTM_GETNSID";
  op.label = "'" + target->path + "'";
  op.parse = Parse::NsId;
  b.Finish(op);
}

Napi::Value ParseNsId(Napi::Env env, const Op& op) {
  for (const auto& r : op.replies) {
    const auto* nlh = reinterpret_cast<const struct nlmsghdr*>(r.data());
    if (nlh->nlmsg_type != RTM_NEWNSID || !HasHeader(nlh, sizeof(struct rtgenmsg))) continue;
    NC_FOR_EACH_ATTR(a, nlh, sizeof(struct rtgenmsg)) {
      uint32_t id;
      if (mnl_attr_get_type(a) == NETNSA_NSID && AttrU32(a, &id)) return Napi::Number::New(env, static_cast<int32_t>(id));
    }
  }
  return Napi::Number::New(env, -1);
}

}  // namespace nc
