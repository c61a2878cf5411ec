// Building netlink messages (libmnl) from the plain JS objects the TypeScript layer sends, and
// reading typed fields out of those objects. TypeScript validates first; the checks here only
// guard the addon against misuse.
#pragma once

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <napi.h>
#include <netinet/in.h>

#include <cstdint>
#include <string>

#include "op.h"

namespace nc {

// libmnl's iteration macros assign from void*, which C++ refuses; these are the same loops.
#define NC_FOR_EACH_ATTR(a, nlh, hdrlen)                                                          \
  for (struct nlattr* a = static_cast<struct nlattr*>(mnl_nlmsg_get_payload_offset(nlh, hdrlen)); \
       mnl_attr_ok(a, static_cast<int>(static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh)) - \
                                       reinterpret_cast<const char*>(a)));                        \
       a = mnl_attr_next(a))
#define NC_FOR_EACH_NESTED(a, nest)                                                              \
  for (struct nlattr* a = static_cast<struct nlattr*>(mnl_attr_get_payload(nest));               \
       mnl_attr_ok(a, static_cast<int>(static_cast<const char*>(mnl_attr_get_payload(nest)) +     \
                                       mnl_attr_get_payload_len(nest) -                           \
                                       reinterpret_cast<const char*>(a)));                        \
       a = mnl_attr_next(a))

// Reading attributes of kernel replies: each checks the attribute's length (and for strings the
// type) first, so a malformed attribute is skipped instead of read past its end.
bool AttrU8(const struct nlattr* a, uint8_t* out);
bool AttrU32(const struct nlattr* a, uint32_t* out);
bool AttrStr(const struct nlattr* a, std::string* out);
// An address of `family` (AF_INET: exactly 4 bytes, AF_INET6: 16), formatted.
bool AttrIp(const struct nlattr* a, int family, std::string* out);
// Whether a reply is long enough for its fixed header.
bool HasHeader(const struct nlmsghdr* nlh, size_t hdrlen);

class MsgBuilder {
 public:
  MsgBuilder(uint16_t type, uint16_t flags);
  struct nlmsghdr* nlh() { return nlh_; }
  template <typename T>
  T* Extra() {
    return static_cast<T*>(mnl_nlmsg_put_extra_header(nlh_, sizeof(T)));
  }
  // Puts a u32 attribute whose value is the ifindex of `name`, resolved by the worker.
  void PutIfindexOf(Op& op, uint16_t type, const std::string& name);
  // Records that the u32 at `where` (inside this message) is the ifindex of `name`.
  void PatchIfindex(Op& op, uint32_t* where, const std::string& name);
  // Puts a u32 attribute holding the fd of namespace `ns` (filled in by the worker for a reserved
  // handle, whose namespace an earlier job makes); the op keeps `ns` open.
  void PutNsFd(Op& op, uint16_t type, const NsPtr& ns);
  void Finish(Op& op);

 private:
  alignas(8) char buf_[8192];
  struct nlmsghdr* nlh_;
};

struct IpAddr {
  int family = 0;  // AF_INET or AF_INET6
  uint8_t bytes[16] = {};
  unsigned prefix = 0;
  size_t len() const { return family == AF_INET ? 4 : 16; }
};

// Parses "192.0.2.1", "192.0.2.1/24", "2001:db8::1/64". Throws a TypeError on bad input.
IpAddr ParseIp(Napi::Env env, const std::string& field, const std::string& s, bool allowPrefix);
std::string FormatIp(int family, const void* bytes);
// Parses "02:00:00:00:00:01" into 6 bytes; throws on bad input.
void ParseMac(Napi::Env env, const std::string& field, const std::string& s, uint8_t out[6]);
std::string FormatMac(const uint8_t* p, size_t len);

// Throws a TypeError for a bad argument: code ERR_INVALID_ARG_TYPE (`typeError`) or
// ERR_INVALID_ARG_VALUE, `field` = arg, message "<arg>: <how to fix it>".
[[noreturn]] void ArgError(Napi::Env env, bool typeError, const std::string& arg, const std::string& fix);
// At most `max` bytes of a value for a message, with "…" when cut.
std::string Echo(const std::string& v, size_t max = 60);

bool Has(const Napi::Object& o, const char* key);
std::string Str(const Napi::Object& o, const char* key);
// A string that goes into a message: at most `max` bytes, so a message never outgrows its buffer
// (libmnl does not check bounds). Interface names and kinds are IFNAMSIZ - 1 = 15 bytes at most.
std::string ShortStr(const Napi::Object& o, const char* key, size_t max = 15);
// An interface name: 1..15 bytes, none of NUL, control characters, '/', ':', whitespace or '%'
// (the kernel expands '%d' in a new link's name to a free number).
std::string IfName(const Napi::Object& o, const char* key);
// An interface alias (IFLA_IFALIAS): no NUL, at most 255 bytes; empty only if `allowEmpty`.
std::string AliasStr(const Napi::Object& o, const char* key, bool allowEmpty);
uint32_t U32(const Napi::Object& o, const char* key);
// An optional IP family selector (4 or 6) → AF_INET/AF_INET6, AF_UNSPEC when absent.
uint8_t IpFamily(const Napi::Object& o, const char* key);
bool Bool(const Napi::Object& o, const char* key);

// Link reference: a name (resolved by the worker when an index is needed) or an index.
struct LinkRef {
  std::string name;
  uint32_t index = 0;
  std::string Describe() const;
};
LinkRef GetLinkRef(const Napi::Object& o, const char* key);
// Puts the link reference into an ifinfomsg request: index in the header, or IFLA_IFNAME.
void PutLinkRef(MsgBuilder& b, struct ifinfomsg* ifm, const LinkRef& ref);
// Sets a u32 field to the link's index (patched later when only a name is known).
void SetIndexField(MsgBuilder& b, Op& op, uint32_t* field, const LinkRef& ref);

// Each object kind fills an Op from its JS description, and turns replies into JS values.
void BuildLinkOp(Napi::Env env, const std::string& type, const Napi::Object& o, Op& op);
void BuildAddrOp(Napi::Env env, const std::string& type, const Napi::Object& o, Op& op);
void BuildRouteOp(Napi::Env env, const std::string& type, const Napi::Object& o, Op& op);
void BuildNeighOp(Napi::Env env, const std::string& type, const Napi::Object& o, Op& op);
// link.add with an alias: the SETLINK that sets it by index, and the index (and same-namespace
// peer index) of the link the kernel echoed back. Worker thread; no JS.
void BuildAliasSet(Op& op, uint32_t index, const std::string& alias);
bool EchoedLink(const Op& op, uint32_t* index, uint32_t* peerIndex);
// An RTM_GETLINK of one link by name (its reply is read like an echo, with EchoedLink).
void BuildGetByName(Op& op, const std::string& name);
// Whether the link in op's replies carries an alias (IFLA_IFALIAS).
bool LinkHasAlias(const Op& op);
Napi::Value ParseLinks(Napi::Env env, const Op& op, bool single);
Napi::Value ParseAddrs(Napi::Env env, const Op& op);
Napi::Value ParseRoutes(Napi::Env env, const Op& op);
Napi::Value ParseNeighs(Napi::Env env, const Op& op);
Napi::Value ParseNsId(Napi::Env env, const Op& op);
void BuildNsIdOp(const Napi::Object& o, Op& op);

}  // namespace nc
