#include "attr.h"

#include <arpa/inet.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>

#include <cmath>

namespace nc {

MsgBuilder::MsgBuilder(uint16_t type, uint16_t flags) {
  memset(buf_, 0, sizeof(buf_));
  nlh_ = mnl_nlmsg_put_header(buf_);
  nlh_->nlmsg_type = type;
  nlh_->nlmsg_flags = NLM_F_REQUEST | flags;
}

void MsgBuilder::PatchIfindex(Op& op, uint32_t* where, const std::string& name) {
  op.patches.push_back({name, static_cast<size_t>(reinterpret_cast<char*>(where) - buf_)});
}

void MsgBuilder::PutIfindexOf(Op& op, uint16_t type, const std::string& name) {
  mnl_attr_put_u32(nlh_, type, 0);
  auto* last = reinterpret_cast<struct nlattr*>(reinterpret_cast<char*>(nlh_) + nlh_->nlmsg_len -
                                                MNL_ALIGN(sizeof(struct nlattr) + 4));
  PatchIfindex(op, static_cast<uint32_t*>(mnl_attr_get_payload(last)), name);
}

void MsgBuilder::PutNsFd(Op& op, uint16_t type, const NsPtr& ns) {
  mnl_attr_put_u32(nlh_, type, ns->reserved ? 0 : static_cast<uint32_t>(ns->fd));
  if (ns->reserved) {
    auto* last = reinterpret_cast<struct nlattr*>(reinterpret_cast<char*>(nlh_) + nlh_->nlmsg_len -
                                                  MNL_ALIGN(sizeof(struct nlattr) + 4));
    op.nsPatches.push_back({ns, static_cast<size_t>(static_cast<char*>(mnl_attr_get_payload(last)) - buf_)});
  }
  op.keep = ns;
}

void MsgBuilder::Finish(Op& op) {
  op.msg.assign(buf_, buf_ + nlh_->nlmsg_len);
}

IpAddr ParseIp(Napi::Env env, const std::string& field, const std::string& s, bool allowPrefix) {
  IpAddr a;
  std::string host = s;
  auto slash = s.find('/');
  if (slash != std::string::npos) {
    if (!allowPrefix) ArgError(env, false, field, "expected an address without a prefix length, got '" + Echo(s) + "'");
    host = s.substr(0, slash);
  }
  if (inet_pton(AF_INET, host.c_str(), a.bytes) == 1) {
    a.family = AF_INET;
  } else if (inet_pton(AF_INET6, host.c_str(), a.bytes) == 1) {
    a.family = AF_INET6;
  } else {
    ArgError(env, false, field, "'" + Echo(s) + "' is not an IPv4 or IPv6 address");
  }
  unsigned max = a.family == AF_INET ? 32 : 128;
  a.prefix = max;
  if (slash != std::string::npos) {
    std::string p = s.substr(slash + 1);
    char* end = nullptr;
    unsigned long v = strtoul(p.c_str(), &end, 10);
    if (p.empty() || *end || v > max)
      ArgError(env, false, field, "the prefix length in '" + Echo(s) + "' must be 0 to " + std::to_string(max));
    a.prefix = static_cast<unsigned>(v);
  }
  return a;
}

std::string FormatIp(int family, const void* bytes) {
  char out[INET6_ADDRSTRLEN] = "";
  inet_ntop(family, bytes, out, sizeof(out));
  return out;
}

void ParseMac(Napi::Env env, const std::string& field, const std::string& s, uint8_t out[6]) {
  unsigned v[6];
  char tail;
  if (sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
             &tail) != 6)
    ArgError(env, false, field, "'" + Echo(s) + "' is not a MAC address; write it as 02:00:00:00:00:01");
  for (int i = 0; i < 6; i++) out[i] = static_cast<uint8_t>(v[i]);
}

std::string FormatMac(const uint8_t* p, size_t len) {
  std::string s;
  char b[4];
  for (size_t i = 0; i < len; i++) {
    snprintf(b, sizeof(b), i ? ":%02x" : "%02x", p[i]);
    s += b;
  }
  return s;
}

bool AttrU8(const struct nlattr* a, uint8_t* out) {
  if (mnl_attr_validate(a, MNL_TYPE_U8) < 0) return false;
  *out = mnl_attr_get_u8(a);
  return true;
}

bool AttrU32(const struct nlattr* a, uint32_t* out) {
  if (mnl_attr_validate(a, MNL_TYPE_U32) < 0) return false;
  *out = mnl_attr_get_u32(a);
  return true;
}

bool AttrStr(const struct nlattr* a, std::string* out) {
  const char* p = static_cast<const char*>(mnl_attr_get_payload(a));
  size_t len = mnl_attr_get_payload_len(a);
  *out = std::string(p, strnlen(p, len));  // never past the payload, NUL-terminated or not
  return true;
}

bool AttrIp(const struct nlattr* a, int family, std::string* out) {
  size_t want = family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
  if (!want || mnl_attr_get_payload_len(a) != want) return false;
  *out = FormatIp(family, mnl_attr_get_payload(a));
  return !out->empty();
}

bool HasHeader(const struct nlmsghdr* nlh, size_t hdrlen) {
  return nlh->nlmsg_len >= NLMSG_LENGTH(hdrlen);
}

uint8_t IpFamily(const Napi::Object& o, const char* key) {
  if (!Has(o, key)) return AF_UNSPEC;
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) ArgError(o.Env(), true, key, "an IP family must be the number 4 or 6");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != 4 && d != 6) ArgError(o.Env(), false, key, "an IP family must be 4 or 6");
  return d == 4 ? AF_INET : AF_INET6;
}

void ArgError(Napi::Env env, bool typeError, const std::string& arg, const std::string& fix) {
  Napi::Error e = Napi::TypeError::New(env, arg + ": " + fix);
  e.Value().Set("code", typeError ? "ERR_INVALID_ARG_TYPE" : "ERR_INVALID_ARG_VALUE");
  e.Value().Set("field", arg);
  throw e;
}

std::string Echo(const std::string& v, size_t max) {
  std::string out;
  for (unsigned char c : v) {
    if (out.size() >= max) return out + "…";
    if (c < 0x20 || c == 0x7f) {
      char b[8];
      snprintf(b, sizeof(b), "\\x%02x", c);
      out += b;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string AliasStr(const Napi::Object& o, const char* key, bool allowEmpty) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) ArgError(o.Env(), true, key, "an interface alias must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) ArgError(o.Env(), false, key, "an interface alias must not contain NUL characters");
  if (s.size() > 255)
    ArgError(o.Env(), false, key, "an interface alias is at most 255 bytes, got " + std::to_string(s.size()));
  if (s.empty() && !allowEmpty) ArgError(o.Env(), false, key, "an interface alias must not be empty");
  return s;
}

bool Has(const Napi::Object& o, const char* key) {
  if (!o.Has(key)) return false;
  Napi::Value v = o.Get(key);
  return !v.IsUndefined() && !v.IsNull();
}

std::string Str(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) ArgError(o.Env(), true, key, "must be a string");
  return v.As<Napi::String>().Utf8Value();
}

std::string ShortStr(const Napi::Object& o, const char* key, size_t max) {
  std::string v = Str(o, key);
  if (v.empty() || v.size() > max)
    ArgError(o.Env(), false, key, "must be 1 to " + std::to_string(max) + " bytes, got " + std::to_string(v.size()));
  if (v.find('\0') != std::string::npos) ArgError(o.Env(), false, key, "must not contain NUL characters");
  return v;
}

std::string IfName(const Napi::Object& o, const char* key) {
  std::string v = ShortStr(o, key);
  for (unsigned char c : v) {
    if (c < 0x20 || c == 0x7f || c == '/' || c == ':' || c == ' ' || c == '%')
      ArgError(o.Env(), false, key,
               "interface name '" + Echo(v) + "' must not contain '/', ':', '%', spaces or control characters");
  }
  if (v == "." || v == "..") ArgError(o.Env(), false, key, "an interface name cannot be '.' or '..'");
  return v;
}

uint32_t U32(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) ArgError(o.Env(), true, key, "must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || std::floor(d) != d)
    ArgError(o.Env(), false, key, "must be an integer from 0 to 4294967295");
  return static_cast<uint32_t>(d);
}

bool Bool(const Napi::Object& o, const char* key) {
  return o.Get(key).ToBoolean().Value();
}

std::string LinkRef::Describe() const {
  return name.empty() ? "#" + std::to_string(index) : "'" + name + "'";
}

LinkRef GetLinkRef(const Napi::Object& o, const char* key) {
  LinkRef r;
  Napi::Value v = o.Get(key);
  if (v.IsString()) {
    r.name = IfName(o, key);
  } else if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 1 && d <= 2147483647.0) || std::floor(d) != d)
      ArgError(o.Env(), false, key, "an interface index must be an integer from 1 to 2147483647");
    r.index = static_cast<uint32_t>(d);
  } else {
    ArgError(o.Env(), true, key, "must be an interface name (string) or index (number)");
  }
  return r;
}

void PutLinkRef(MsgBuilder& b, struct ifinfomsg* ifm, const LinkRef& ref) {
  if (ref.name.empty()) {
    ifm->ifi_index = static_cast<int>(ref.index);
  } else {
    mnl_attr_put_strz(b.nlh(), IFLA_IFNAME, ref.name.c_str());
  }
}

void SetIndexField(MsgBuilder& b, Op& op, uint32_t* field, const LinkRef& ref) {
  if (ref.name.empty()) {
    *field = ref.index;
  } else {
    b.PatchIfindex(op, field, ref.name);
  }
}

}  // namespace nc
