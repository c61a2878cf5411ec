// Reading nftables op objects: names, families, numbers, bytes, verdicts, registers, meta keys;
// every refusal is an argument error naming the field.
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

void Bad(Napi::Env env, const std::string& what, const std::string& msg) {
  ArgError(env, false, what, msg);
}

// A table/chain/set name: the kernel's limit (NFT_NAME_MAXLEN with the NUL), checked here because
// message buffers are sized from it.
std::string Name(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what) {
  std::string s = Str(o, key);
  if (s.empty() || s.size() >= NFT_NAME_MAXLEN || s.find('\0') != std::string::npos)
    Bad(env, what, std::string(key) + " must be 1.." + std::to_string(NFT_NAME_MAXLEN - 1) + " bytes");
  return s;
}

uint32_t Family(Napi::Env env, const Napi::Object& o, const std::string& what) {
  static const std::map<std::string, uint32_t> names = {
      {"ip", NFPROTO_IPV4},   {"ip6", NFPROTO_IPV6},     {"inet", NFPROTO_INET},
      {"bridge", NFPROTO_BRIDGE}, {"arp", NFPROTO_ARP}, {"netdev", NFPROTO_NETDEV}};
  return Pick(env, what + ".family", Str(o, "family"), names);
}

uint32_t Num(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) Bad(env, what, std::string(key) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d < 0 || d > 4294967295.0 || std::floor(d) != d)
    Bad(env, what, std::string(key) + " must be an integer 0..2^32-1");
  return static_cast<uint32_t>(d);
}

std::vector<uint8_t> Hex(Napi::Env env, const std::string& s, const std::string& what) {
  std::string h = s.substr(2);
  if (h.empty() || h.size() % 2) Bad(env, what, "'" + Echo(s) + "' is not a hex string: write 0x and pairs of hex digits");
  std::vector<uint8_t> out;
  for (size_t i = 0; i < h.size(); i += 2) {
    char* end = nullptr;
    std::string byte = h.substr(i, 2);
    unsigned long b = strtoul(byte.c_str(), &end, 16);
    if (*end || byte.size() != 2 || !isxdigit(static_cast<unsigned char>(byte[0])) || !isxdigit(static_cast<unsigned char>(byte[1])))
      Bad(env, what, "'" + Echo(s) + "' is not a hex string: write 0x and pairs of hex digits");
    out.push_back(static_cast<uint8_t>(b));
  }
  return out;
}

// A value as the bytes nft would put in a register: a number is a u32 in host byte order (like
// nft's integer types); a string is "0x<hex>", a MAC ("02:00:00:00:00:01") or an IPv4/IPv6
// address; a Uint8Array/Buffer is taken as is.
std::vector<uint8_t> Bytes(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (v.IsTypedArray()) {
    if (v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      Bad(env, what, "data must be a Uint8Array");
    auto u = v.As<Napi::Uint8Array>();
    return std::vector<uint8_t>(u.Data(), u.Data() + u.ByteLength());
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (d < 0 || d > 4294967295.0 || std::floor(d) != d) Bad(env, what, "number must be a u32");
    uint32_t x = static_cast<uint32_t>(d);
    std::vector<uint8_t> out(4);
    memcpy(out.data(), &x, 4);
    return out;
  }
  if (v.IsString()) {
    std::string s = v.As<Napi::String>().Utf8Value();
    if (s.rfind("0x", 0) == 0) return Hex(env, s, what);
    if (s.size() == 17 && s[2] == ':' && s[5] == ':') {
      uint8_t mac[6];
      ParseMac(env, what, s, mac);
      return std::vector<uint8_t>(mac, mac + 6);
    }
    uint8_t a[16];
    if (inet_pton(AF_INET, s.c_str(), a) == 1) return std::vector<uint8_t>(a, a + 4);
    if (inet_pton(AF_INET6, s.c_str(), a) == 1) return std::vector<uint8_t>(a, a + 16);
    Bad(env, what, "cannot read '" + Echo(s) + "' as data (expected 0x<hex>, a MAC or an IP address)");
  }
  Bad(env, what, "data must be a number, a string or a Uint8Array");
}

// A comment as nft stores it (set, rule, table): a C string, shorter than 128 bytes.
std::string Comment(Napi::Env env, const Napi::Object& o, const std::string& what) {
  Napi::Value v = o.Get("comment");
  if (!v.IsString()) Bad(env, what, "comment must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) Bad(env, what, "comment must not contain NUL characters");
  if (s.size() >= NFTNL_UDATA_COMMENT_MAXLEN)
    Bad(env, what, "comment is " + std::to_string(s.size()) + " bytes; nft allows at most 127");
  return s;
}

bool BoolArg(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what) {
  Napi::Value v = o.Get(key);
  if (!v.IsBoolean()) Bad(env, what, std::string(key) + " must be true or false");
  return v.As<Napi::Boolean>().Value();
}

// An object handle as nft reports it: a positive integer (below 2^53, as JS numbers are exact there).
uint64_t Handle(Napi::Env env, const Napi::Object& o, const std::string& what) {
  Napi::Value v = o.Get("handle");
  if (!v.IsNumber()) Bad(env, what, "handle must be a number (from listRules/listTables)");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 1 && d <= 9007199254740991.0) || std::floor(d) != d)
    Bad(env, what, "handle must be a positive integer (from listRules/listTables)");
  return static_cast<uint64_t>(d);
}

Napi::Object ObjArg(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what) {
  Napi::Value v = o.Get(key);
  if (!v.IsObject()) ArgError(env, true, what + "." + key, "must be an object");
  return v.As<Napi::Object>();
}

int32_t Verdict(Napi::Env env, const std::string& v, const std::string& what) {
  static const std::map<std::string, int32_t> names = {
      {"accept", NF_ACCEPT}, {"drop", NF_DROP},   {"continue", NFT_CONTINUE}, {"return", NFT_RETURN},
      {"jump", NFT_JUMP},    {"goto", NFT_GOTO}, {"break", NFT_BREAK}};
  return Pick(env, what + ".verdict", v, names);
}

uint32_t Reg(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what) {
  uint32_t r = Num(env, o, key, what);
  if (r > NFT_REG32_15) Bad(env, what, std::string(key) + " is not a register number");
  return r;
}

uint32_t MetaKey(Napi::Env env, const std::string& k, const std::string& what) {
  static const std::map<std::string, uint32_t> names = {
      {"len", NFT_META_LEN},           {"protocol", NFT_META_PROTOCOL},
      {"priority", NFT_META_PRIORITY}, {"mark", NFT_META_MARK},
      {"iif", NFT_META_IIF},           {"oif", NFT_META_OIF},
      {"iifname", NFT_META_IIFNAME},   {"oifname", NFT_META_OIFNAME},
      {"iiftype", NFT_META_IIFTYPE},   {"oiftype", NFT_META_OIFTYPE},
      {"nfproto", NFT_META_NFPROTO},   {"l4proto", NFT_META_L4PROTO},
      {"pkttype", NFT_META_PKTTYPE},   {"cpu", NFT_META_CPU},
      {"ibrname", NFT_META_BRI_IIFNAME}, {"obrname", NFT_META_BRI_OIFNAME},
      {"iifgroup", NFT_META_IIFGROUP}, {"oifgroup", NFT_META_OIFGROUP},
      {"nftrace", NFT_META_NFTRACE},   {"prandom", NFT_META_PRANDOM},
      {"skuid", NFT_META_SKUID},       {"skgid", NFT_META_SKGID},
      {"cgroup", NFT_META_CGROUP},     {"iifkind", NFT_META_IIFKIND},
      {"oifkind", NFT_META_OIFKIND}};
  return Pick(env, what + ".key", k, names);
}

}  // namespace nc::nftimpl
