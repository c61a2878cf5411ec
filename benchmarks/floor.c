/*
 * The floor: the cluster's complete data plane built with raw rtnetlink (libmnl) and one libnftnl
 * batch per namespace, as fast as this program knows how, to measure how far createCluster is from
 * what the kernel itself costs. Built by the benchmark harness (cc -O2, libmnl + libnftnl).
 *
 * It builds what createCluster builds from the cluster's own plan (planCluster, turned into the
 * line format of benchmarks/setup-floor.ts), so it cannot drift from the real topology; the harness
 * also compares what it built with `ip -j` and `nft -j` against createCluster's result.
 *
 * How it builds (setup), per run:
 *   - T worker threads (T = 1 or 2) take the nodes round robin. For each node a thread unshares a
 *     new network namespace and STAYS in it (no setns), bind-mounts it under /run/netns, writes the
 *     sysctls through /proc, then sends ONE rtnetlink sendmsg for everything in that node (lo up
 *     with the mark, the veth created from inside the node with its host end put into the host
 *     namespace, eth0's alias, addresses, routes) and ONE nftables batch for the node's table; the
 *     acks of both are read afterwards (pipelined).
 *   - The main thread, in the host namespace: the bridge (one request, echoed for its index), then
 *     in one sendmsg the bridge's mark and the uplink's enslavement, plus the host's nftables batch;
 *     then, as nodes report their veth made, their host ends enslaved, up and marked, in one
 *     sendmsg per wake-up.
 * Teardown variants (the harness reports each, and the best as the floor):
 *   ns-first:  node namespaces unmounted and unlinked in order, then the host's table, uplink and bridge;
 *   host-first: the host's table, uplink and bridge first, then the namespaces;
 *   links-first: every host veth deleted in one sendmsg (a veth takes its peer with it), with the
 *              bridge, then the namespaces.
 *
 * Protocol (stdin/stdout, one line each): `load FILE` -> `ok`; `setup T` -> `ok MICROSECONDS`;
 * `teardown VARIANT` -> `ok MICROSECONDS`; errors -> `err MESSAGE`. Runs as root.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* <net/if.h> clashes with <linux/if.h> */
extern unsigned int if_nametoindex(const char *ifname);

#define MAXTOK 4096
#define BUFSZ (1 << 20)

/* ───────────────────────────── the plan ───────────────────────────── */

struct line {
  int ntok;
  char **tok;
};
struct table {
  int ns; /* -1: host, else node index */
  int family;
  struct line *cmds;
  int ncmds;
};
struct addr {
  char ifname[IFNAMSIZ];
  int family;
  unsigned char ip[16];
  int prefix;
};
struct route {
  int family;
  int dflt;
  unsigned char dst[16];
  int dstlen;
  int hasVia;
  unsigned char via[16];
  char dev[IFNAMSIZ];
};
struct sysctl {
  char path[256];
  char value[64];
};
struct node {
  char netns[256];
  char ifname[IFNAMSIZ];
  char hostVeth[IFNAMSIZ];
  unsigned char mac[6];
  int hasMac, up, hostUp;
  int noFlood; /* the host end: a bridge port that unknown unicast is not flooded to */
  struct addr *addrs;
  int naddrs;
  struct route *routes;
  int nroutes;
  struct sysctl *sysctls;
  int nsysctls;
  int table; /* index into tables, -1 none */
  /* per run */
  int fd;
  volatile int ready;
  char err[512];
};

static struct {
  char mark[256];
  char hostPath[512];
  char bridge[IFNAMSIZ];
  unsigned char bridgeMac[6];
  int bridgeUp, mcast, stp, fwdDelay;
  char uplink[IFNAMSIZ];
  struct node *nodes;
  int nnodes;
  struct table *tables;
  int ntables;
  int hostTable;
  int hostTableLate; /* a rule names a link (fwd to a node's port): sent once the veths exist */
  struct sysctl *hostSysctls;
  int nhostSysctls;
} P;

static int hostFd = -1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int readyCount;

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
static int unhex(const char *s, unsigned char *out, int max) {
  int n = 0;
  for (; s[0] && s[1] && n < max; s += 2) out[n++] = (unsigned char)(hexval(s[0]) << 4 | hexval(s[1]));
  return n;
}
static void parseMac(const char *s, unsigned char *m) {
  unsigned v[6];
  sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]);
  for (int i = 0; i < 6; i++) m[i] = (unsigned char)v[i];
}
static int parseIp(const char *s, unsigned char *out) {
  if (inet_pton(AF_INET, s, out) == 1) return AF_INET;
  if (inet_pton(AF_INET6, s, out) == 1) return AF_INET6;
  return 0;
}
static char *dash(char *s) { return strcmp(s, "-") == 0 ? NULL : s; }

static struct line splitLine(char *s) {
  struct line l = {0, malloc(sizeof(char *) * MAXTOK)};
  for (char *t = strtok(s, " \n"); t && l.ntok < MAXTOK; t = strtok(NULL, " \n")) l.tok[l.ntok++] = strdup(t);
  return l;
}

#define GROW(arr, n) (arr = realloc(arr, sizeof(*(arr)) * ((n) + 1)), &(arr)[(n)++])

static int nodeIndex(const char *netns) {
  if (!netns) return -1;
  for (int i = 0; i < P.nnodes; i++)
    if (strcmp(P.nodes[i].netns, netns) == 0) return i;
  fprintf(stderr, "floor: unknown namespace %s\n", netns);
  exit(2);
}

static void load(const char *file) {
  memset(&P, 0, sizeof(P));
  P.hostTable = -1;
  P.hostTableLate = 0;
  FILE *f = fopen(file, "r");
  if (!f) {
    perror(file);
    exit(2);
  }
  size_t cap = 0;
  char *buf = NULL;
  struct table *cur = NULL;
  while (getline(&buf, &cap, f) > 0) {
    struct line l = splitLine(buf);
    if (l.ntok == 0) continue;
    char **t = l.tok;
    if (!strcmp(t[0], "mark")) snprintf(P.mark, sizeof(P.mark), "%s", t[1]);
    else if (!strcmp(t[0], "host")) snprintf(P.hostPath, sizeof(P.hostPath), "%s", t[1]);
    else if (!strcmp(t[0], "bridge")) {
      snprintf(P.bridge, IFNAMSIZ, "%s", t[1]);
      parseMac(t[2], P.bridgeMac);
      P.bridgeUp = atoi(t[3]);
      P.mcast = atoi(t[4]);
      P.stp = atoi(t[5]);
      P.fwdDelay = atoi(t[6]);
    } else if (!strcmp(t[0], "uplink")) snprintf(P.uplink, IFNAMSIZ, "%s", t[1]);
    else if (!strcmp(t[0], "node")) {
      struct node *n = GROW(P.nodes, P.nnodes);
      memset(n, 0, sizeof(*n));
      snprintf(n->netns, sizeof(n->netns), "%s", t[1]);
      snprintf(n->ifname, IFNAMSIZ, "%s", t[2]);
      n->hasMac = dash(t[3]) != NULL;
      if (n->hasMac) parseMac(t[3], n->mac);
      snprintf(n->hostVeth, IFNAMSIZ, "%s", t[4]);
      n->up = atoi(t[5]);
      n->hostUp = atoi(t[6]);
      n->noFlood = l.ntok > 7 && !strcmp(t[7], "noflood");
      n->table = -1;
    } else if (!strcmp(t[0], "sysctl")) {
      int k = nodeIndex(dash(t[1]));
      struct sysctl *s = k < 0 ? GROW(P.hostSysctls, P.nhostSysctls) : GROW(P.nodes[k].sysctls, P.nodes[k].nsysctls);
      snprintf(s->path, sizeof(s->path), "/proc/sys/%s", t[2]);
      snprintf(s->value, sizeof(s->value), "%s\n", t[3]);
    } else if (!strcmp(t[0], "addr")) {
      struct node *n = &P.nodes[nodeIndex(t[1])];
      struct addr *a = GROW(n->addrs, n->naddrs);
      snprintf(a->ifname, IFNAMSIZ, "%s", t[2]);
      a->family = parseIp(t[3], a->ip);
      a->prefix = atoi(t[4]);
    } else if (!strcmp(t[0], "route")) {
      struct node *n = &P.nodes[nodeIndex(t[1])];
      struct route *r = GROW(n->routes, n->nroutes);
      memset(r, 0, sizeof(*r));
      r->family = atoi(t[2]) == 6 ? AF_INET6 : AF_INET;
      r->dflt = !strcmp(t[3], "default");
      if (!r->dflt) {
        parseIp(t[3], r->dst);
        r->dstlen = atoi(t[4]);
      }
      if (dash(t[5])) r->hasVia = parseIp(t[5], r->via) != 0;
      if (dash(t[6])) snprintf(r->dev, IFNAMSIZ, "%s", t[6]);
    } else if (!strcmp(t[0], "table")) {
      cur = GROW(P.tables, P.ntables);
      cur->ns = nodeIndex(dash(t[1]));
      cur->family = atoi(t[2]);
      cur->cmds = NULL;
      cur->ncmds = 0;
      if (cur->ns < 0) P.hostTable = P.ntables - 1;
      else P.nodes[cur->ns].table = P.ntables - 1;
      continue;
    } else if (strlen(t[0]) == 1 && cur) {
      *GROW(cur->cmds, cur->ncmds) = l;
      if (cur->ns < 0)
        for (int i = 0; i < l.ntok; i++)
          if (!strncmp(l.tok[i], "ifx,", 4)) P.hostTableLate = 1;
      continue;
    } else {
      fprintf(stderr, "floor: unknown line %s\n", t[0]);
      exit(2);
    }
  }
  free(buf);
  fclose(f);
}

/* ───────────────────────────── netlink ───────────────────────────── */

struct sock {
  int fd;
  uint32_t seq;
  char *buf;
  size_t len;
  int pending; /* acks awaited */
  char err[512];
};

static int sockOpen(struct sock *s, int proto) {
  s->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, proto);
  if (s->fd < 0) return -1;
  int big = 8 << 20, one = 1;
  setsockopt(s->fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
  setsockopt(s->fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
  setsockopt(s->fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  setsockopt(s->fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) return -1;
  if (!s->buf) s->buf = malloc(BUFSZ);
  s->seq = 1;
  s->len = 0;
  s->pending = 0;
  s->err[0] = 0;
  return 0;
}
static void sockClose(struct sock *s) {
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
}

/* A new message at the end of the buffer (with NLM_F_ACK). */
static struct nlmsghdr *msg(struct sock *s, uint16_t type, uint16_t flags) {
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(s->buf + s->len);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
  nlh->nlmsg_seq = s->seq++;
  s->pending++;
  return nlh;
}
static void done(struct sock *s, struct nlmsghdr *nlh) { s->len += NLMSG_ALIGN(nlh->nlmsg_len); }

static int sendAll(struct sock *s) {
  if (!s->len) return 0;
  ssize_t n = send(s->fd, s->buf, s->len, 0);
  s->len = 0;
  if (n < 0) {
    snprintf(s->err, sizeof(s->err), "sendmsg: %s", strerror(errno));
    return -1;
  }
  return 0;
}

/* Reads until every ack is in. `echo` (optional) receives the index of an echoed RTM_NEWLINK. */
static int waitAcks(struct sock *s, int *echo) {
  char rb[1 << 16];
  int rc = 0;
  while (s->pending > 0) {
    ssize_t n = recv(s->fd, rb, sizeof(rb), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      snprintf(s->err, sizeof(s->err), "recv: %s", strerror(errno));
      return -1;
    }
    int len = (int)n;
    for (struct nlmsghdr *nlh = (struct nlmsghdr *)rb; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
      if (nlh->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
        s->pending--;
        if (e->error && !rc) {
          snprintf(s->err, sizeof(s->err), "seq %u: %s", nlh->nlmsg_seq, strerror(-e->error));
          rc = -1;
        }
      } else if (nlh->nlmsg_type == RTM_NEWLINK && echo) {
        *echo = ((struct ifinfomsg *)mnl_nlmsg_get_payload(nlh))->ifi_index;
      }
    }
  }
  return rc;
}

static void putLink(struct sock *s, uint16_t type, uint16_t flags, int index, const char *name, int upChange, int up,
                    const char *alias, int master) {
  struct nlmsghdr *nlh = msg(s, type, flags);
  struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = index;
  if (upChange) {
    ifm->ifi_change = IFF_UP;
    ifm->ifi_flags = up ? IFF_UP : 0;
  }
  if (name) mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
  if (alias) mnl_attr_put(nlh, IFLA_IFALIAS, strlen(alias), alias);
  if (master >= 0) mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t)master);
  done(s, nlh);
}

/* A bridge port's unicast flooding off: slave data, which only RTM_NEWLINK reads (on a port already). */
static void putNoFlood(struct sock *s, const char *name) {
  struct nlmsghdr *nlh = msg(s, RTM_NEWLINK, 0);
  struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
  ifm->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
  struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_SLAVE_DATA);
  mnl_attr_put_u8(nlh, IFLA_BRPORT_UNICAST_FLOOD, 0);
  mnl_attr_nest_end(nlh, data);
  mnl_attr_nest_end(nlh, info);
  done(s, nlh);
}

static void putAddr(struct sock *s, int index, const struct addr *a) {
  struct nlmsghdr *nlh = msg(s, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
  struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
  ifa->ifa_family = (unsigned char)a->family;
  ifa->ifa_prefixlen = (unsigned char)a->prefix;
  ifa->ifa_flags = IFA_F_NODAD;
  ifa->ifa_index = (unsigned)index;
  int alen = a->family == AF_INET ? 4 : 16;
  mnl_attr_put(nlh, IFA_LOCAL, alen, a->ip);
  mnl_attr_put(nlh, IFA_ADDRESS, alen, a->ip);
  if (a->family == AF_INET) {
    /* brd + : the prefix's last address, as `ip addr add … brd +` and the library do */
    uint32_t ip, mask = a->prefix ? htonl(~0u << (32 - a->prefix)) : 0;
    memcpy(&ip, a->ip, 4);
    uint32_t brd = ip | ~mask;
    if (a->prefix < 31) mnl_attr_put(nlh, IFA_BROADCAST, 4, &brd);
  }
  mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_NODAD);
  done(s, nlh);
}

static void putRoute(struct sock *s, const struct route *r, int devIndex) {
  struct nlmsghdr *nlh = msg(s, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
  struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
  rtm->rtm_family = (unsigned char)r->family;
  rtm->rtm_dst_len = r->dflt ? 0 : (unsigned char)r->dstlen;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_STATIC;
  rtm->rtm_scope = r->hasVia ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  rtm->rtm_type = RTN_UNICAST;
  int alen = r->family == AF_INET ? 4 : 16;
  if (!r->dflt) mnl_attr_put(nlh, RTA_DST, alen, r->dst);
  if (r->hasVia) mnl_attr_put(nlh, RTA_GATEWAY, alen, r->via);
  if (devIndex > 0) mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)devIndex);
  done(s, nlh);
}

/* ───────────────────────────── nftables from the plan's commands ───────────────────────────── */

static __thread uint32_t nftNextSetId; /* per thread: node threads build their batches at once */
struct setid {
  char table[64], set[64];
  uint32_t id;
};
static __thread struct setid setIds[16];
static __thread int nsetIds;

static uint32_t setIdOf(const char *table, const char *set) {
  for (int i = 0; i < nsetIds; i++)
    if (!strcmp(setIds[i].table, table) && !strcmp(setIds[i].set, set)) return setIds[i].id;
  return 0;
}

static void putTypeof(struct nftnl_udata_buf *b, uint8_t type, const char *spec) {
  /* m:<metakey> or p:<desc>:<field>, as nft stores `typeof` */
  struct nftnl_udata *outer = nftnl_udata_nest_start(b, type);
  if (spec[0] == 'm') {
    nftnl_udata_put_u32(b, NFTNL_UDATA_SET_TYPEOF_EXPR, 9);
    struct nftnl_udata *inner = nftnl_udata_nest_start(b, NFTNL_UDATA_SET_TYPEOF_DATA);
    nftnl_udata_put_u32(b, 0, (uint32_t)atoi(spec + 2));
    nftnl_udata_nest_end(b, inner);
  } else {
    unsigned desc = 0, field = 0;
    sscanf(spec, "p:%u:%u", &desc, &field);
    nftnl_udata_put_u32(b, NFTNL_UDATA_SET_TYPEOF_EXPR, 7);
    struct nftnl_udata *inner = nftnl_udata_nest_start(b, NFTNL_UDATA_SET_TYPEOF_DATA);
    nftnl_udata_put_u32(b, 0, desc);
    nftnl_udata_put_u32(b, 1, field);
    nftnl_udata_nest_end(b, inner);
  }
  nftnl_udata_nest_end(b, outer);
}

static struct nftnl_expr *buildExpr(char *tok, const char *table) {
  char *f[16];
  int n = 0;
  char *save = NULL; /* strtok_r: node threads parse at the same time */
  for (char *p = strtok_r(tok, ",", &save); p && n < 16; p = strtok_r(NULL, ",", &save)) f[n++] = p;
  struct nftnl_expr *x = NULL;
  unsigned char data[64];
  if (!strcmp(f[0], "pl") || !strcmp(f[0], "ps")) {
    x = nftnl_expr_alloc("payload");
    nftnl_expr_set_u32(x, NFTNL_EXPR_PAYLOAD_BASE, (uint32_t)atoi(f[1]));
    nftnl_expr_set_u32(x, NFTNL_EXPR_PAYLOAD_OFFSET, (uint32_t)atoi(f[2]));
    nftnl_expr_set_u32(x, NFTNL_EXPR_PAYLOAD_LEN, (uint32_t)atoi(f[3]));
    if (f[0][1] == 'l') {
      nftnl_expr_set_u32(x, NFTNL_EXPR_PAYLOAD_DREG, (uint32_t)atoi(f[4]));
    } else {
      nftnl_expr_set_u32(x, NFTNL_EXPR_PAYLOAD_SREG, (uint32_t)atoi(f[4]));
      nftnl_expr_set_u32(x, NFTNL_EXPR_PAYLOAD_CSUM_TYPE, (uint32_t)atoi(f[5]));
      nftnl_expr_set_u32(x, NFTNL_EXPR_PAYLOAD_CSUM_OFFSET, (uint32_t)atoi(f[6]));
      nftnl_expr_set_u32(x, NFTNL_EXPR_PAYLOAD_FLAGS, (uint32_t)atoi(f[7]));
    }
  } else if (!strcmp(f[0], "ml") || !strcmp(f[0], "ms")) {
    x = nftnl_expr_alloc("meta");
    nftnl_expr_set_u32(x, NFTNL_EXPR_META_KEY, (uint32_t)atoi(f[1]));
    nftnl_expr_set_u32(x, f[0][1] == 'l' ? NFTNL_EXPR_META_DREG : NFTNL_EXPR_META_SREG, (uint32_t)atoi(f[2]));
  } else if (!strcmp(f[0], "cmp")) {
    x = nftnl_expr_alloc("cmp");
    nftnl_expr_set_u32(x, NFTNL_EXPR_CMP_SREG, (uint32_t)atoi(f[1]));
    nftnl_expr_set_u32(x, NFTNL_EXPR_CMP_OP, (uint32_t)atoi(f[2]));
    int len = unhex(f[3], data, 64);
    nftnl_expr_set_data(x, NFTNL_EXPR_CMP_DATA, data, (uint32_t)len);
  } else if (!strcmp(f[0], "hash")) {
    x = nftnl_expr_alloc("hash");
    nftnl_expr_set_u32(x, NFTNL_EXPR_HASH_TYPE, NFT_HASH_JENKINS);
    nftnl_expr_set_u32(x, NFTNL_EXPR_HASH_SREG, (uint32_t)atoi(f[1]));
    nftnl_expr_set_u32(x, NFTNL_EXPR_HASH_LEN, (uint32_t)atoi(f[2]));
    nftnl_expr_set_u32(x, NFTNL_EXPR_HASH_SEED, (uint32_t)strtoul(f[4], NULL, 10));
    nftnl_expr_set_u32(x, NFTNL_EXPR_HASH_MODULUS, (uint32_t)atoi(f[3]));
    if (strcmp(f[5], "-")) nftnl_expr_set_u32(x, NFTNL_EXPR_HASH_OFFSET, (uint32_t)atoi(f[5]));
    nftnl_expr_set_u32(x, NFTNL_EXPR_HASH_DREG, (uint32_t)atoi(f[6]));
  } else if (!strcmp(f[0], "lk")) {
    x = nftnl_expr_alloc("lookup");
    nftnl_expr_set_str(x, NFTNL_EXPR_LOOKUP_SET, f[1]);
    uint32_t id = setIdOf(table, f[1]);
    if (id) nftnl_expr_set_u32(x, NFTNL_EXPR_LOOKUP_SET_ID, id);
    nftnl_expr_set_u32(x, NFTNL_EXPR_LOOKUP_SREG, (uint32_t)atoi(f[2]));
    if (strcmp(f[3], "-")) nftnl_expr_set_u32(x, NFTNL_EXPR_LOOKUP_DREG, (uint32_t)atoi(f[3]));
    if (atoi(f[4])) nftnl_expr_set_u32(x, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
  } else if (!strcmp(f[0], "imm")) {
    x = nftnl_expr_alloc("immediate");
    nftnl_expr_set_u32(x, NFTNL_EXPR_IMM_DREG, (uint32_t)atoi(f[1]));
    int len = unhex(f[2], data, 64);
    nftnl_expr_set_data(x, NFTNL_EXPR_IMM_DATA, data, (uint32_t)len);
  } else if (!strcmp(f[0], "ifx")) { /* ifx,dreg,ifname: the link's index, looked up now */
    x = nftnl_expr_alloc("immediate");
    nftnl_expr_set_u32(x, NFTNL_EXPR_IMM_DREG, (uint32_t)atoi(f[1]));
    uint32_t index = if_nametoindex(f[2]);
    nftnl_expr_set_data(x, NFTNL_EXPR_IMM_DATA, &index, sizeof(index));
  } else if (!strcmp(f[0], "fwd")) {
    x = nftnl_expr_alloc("fwd");
    nftnl_expr_set_u32(x, NFTNL_EXPR_FWD_SREG_DEV, (uint32_t)atoi(f[1]));
  } else if (!strcmp(f[0], "vd")) { /* vd,verdict[/chain] */
    x = nftnl_expr_alloc("immediate");
    nftnl_expr_set_u32(x, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
    nftnl_expr_set_u32(x, NFTNL_EXPR_IMM_VERDICT, (uint32_t)atoi(f[1]));
    char *slash = strchr(f[1], '/');
    if (slash) nftnl_expr_set_str(x, NFTNL_EXPR_IMM_CHAIN, slash + 1);
  } else if (!strcmp(f[0], "ctr")) {
    x = nftnl_expr_alloc("counter");
    nftnl_expr_set_u64(x, NFTNL_EXPR_CTR_PACKETS, 0);
    nftnl_expr_set_u64(x, NFTNL_EXPR_CTR_BYTES, 0);
  } else {
    fprintf(stderr, "floor: unknown expression %s\n", f[0]);
    exit(2);
  }
  return x;
}

static struct nlmsghdr *nftHdr(struct sock *s, uint16_t type, int family, uint16_t flags) {
  struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(s->buf + s->len, type, (uint16_t)family, flags | NLM_F_ACK, s->seq++);
  s->pending++;
  return nlh;
}

/* One table's commands as one transaction appended to s's buffer. */
static void buildTable(struct sock *s, const struct table *t) {
  nsetIds = 0;
  nftNextSetId = 1;
  int fam = t->family;
  /* begin and end unacked, every command acked (as the library sends them) */
  struct nlmsghdr *begin = nftnl_batch_begin(s->buf + s->len, s->seq++);
  s->len += NLMSG_ALIGN(begin->nlmsg_len);
  for (int i = 0; i < t->ncmds; i++) {
    /* tokens are consumed by strtok in buildExpr: work on copies */
    char **a = t->cmds[i].tok;
    int n = t->cmds[i].ntok;
    struct nlmsghdr *nlh;
    char c = a[0][0];
    if (c == 't') { /* t name comment|- excl */
      struct nftnl_table *x = nftnl_table_alloc();
      nftnl_table_set_u32(x, NFTNL_TABLE_FAMILY, (uint32_t)fam);
      nftnl_table_set_str(x, NFTNL_TABLE_NAME, a[1]);
      if (dash(a[2])) {
        struct nftnl_udata_buf *ud = nftnl_udata_buf_alloc(256);
        nftnl_udata_put_strz(ud, NFTNL_UDATA_TABLE_COMMENT, a[2]);
        nftnl_table_set_data(x, NFTNL_TABLE_USERDATA, nftnl_udata_buf_data(ud), nftnl_udata_buf_len(ud));
        nftnl_udata_buf_free(ud);
      }
      nlh = nftHdr(s, NFT_MSG_NEWTABLE, fam, NLM_F_CREATE | (atoi(a[3]) ? NLM_F_EXCL : 0));
      nftnl_table_nlmsg_build_payload(nlh, x);
      nftnl_table_free(x);
    } else if (c == 'c') { /* c table name hook prio policy type device */
      struct nftnl_chain *x = nftnl_chain_alloc();
      nftnl_chain_set_u32(x, NFTNL_CHAIN_FAMILY, (uint32_t)fam);
      nftnl_chain_set_str(x, NFTNL_CHAIN_TABLE, a[1]);
      nftnl_chain_set_str(x, NFTNL_CHAIN_NAME, a[2]);
      if (dash(a[3])) {
        nftnl_chain_set_u32(x, NFTNL_CHAIN_HOOKNUM, (uint32_t)atoi(a[3]));
        nftnl_chain_set_s32(x, NFTNL_CHAIN_PRIO, atoi(a[4]));
        nftnl_chain_set_str(x, NFTNL_CHAIN_TYPE, a[6]);
        if (dash(a[5])) nftnl_chain_set_u32(x, NFTNL_CHAIN_POLICY, (uint32_t)atoi(a[5]));
        if (n > 7 && dash(a[7])) nftnl_chain_set_str(x, NFTNL_CHAIN_DEV, a[7]);
      }
      nlh = nftHdr(s, NFT_MSG_NEWCHAIN, fam, NLM_F_CREATE);
      nftnl_chain_nlmsg_build_payload(nlh, x);
      nftnl_chain_free(x);
    } else if (c == 's') { /* s table name keytype keylen flags datatype|- datalen keyorder dataorder keytypeof datatypeof comment size */
      struct nftnl_set *x = nftnl_set_alloc();
      nftnl_set_set_u32(x, NFTNL_SET_FAMILY, (uint32_t)fam);
      nftnl_set_set_str(x, NFTNL_SET_TABLE, a[1]);
      nftnl_set_set_str(x, NFTNL_SET_NAME, a[2]);
      nftnl_set_set_u32(x, NFTNL_SET_KEY_TYPE, (uint32_t)atoi(a[3]));
      nftnl_set_set_u32(x, NFTNL_SET_KEY_LEN, (uint32_t)atoi(a[4]));
      if (dash(a[6])) {
        nftnl_set_set_u32(x, NFTNL_SET_DATA_TYPE, (uint32_t)strtoul(a[6], NULL, 10));
        nftnl_set_set_u32(x, NFTNL_SET_DATA_LEN, (uint32_t)atoi(a[7]));
      }
      nftnl_set_set_u32(x, NFTNL_SET_FLAGS, (uint32_t)atoi(a[5]));
      struct nftnl_udata_buf *ud = nftnl_udata_buf_alloc(256);
      int any = 0;
      if (atoi(a[8])) nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_KEYBYTEORDER, (uint32_t)atoi(a[8])), any = 1;
      if (atoi(a[9])) nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_DATABYTEORDER, (uint32_t)atoi(a[9])), any = 1;
      if (dash(a[10])) putTypeof(ud, NFTNL_UDATA_SET_KEY_TYPEOF, a[10]), any = 1;
      if (dash(a[11])) putTypeof(ud, NFTNL_UDATA_SET_DATA_TYPEOF, a[11]), any = 1;
      if (n > 12 && dash(a[12])) nftnl_udata_put_strz(ud, NFTNL_UDATA_SET_COMMENT, a[12]), any = 1;
      if (n > 13 && atoi(a[13])) nftnl_set_set_u32(x, NFTNL_SET_DESC_SIZE, (uint32_t)atoi(a[13]));
      if (any) nftnl_set_set_data(x, NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud), nftnl_udata_buf_len(ud));
      nftnl_udata_buf_free(ud);
      struct setid *sid = &setIds[nsetIds++];
      snprintf(sid->table, sizeof(sid->table), "%s", a[1]);
      snprintf(sid->set, sizeof(sid->set), "%s", a[2]);
      sid->id = nftNextSetId++;
      nftnl_set_set_u32(x, NFTNL_SET_ID, sid->id);
      nlh = nftHdr(s, NFT_MSG_NEWSET, fam, NLM_F_CREATE);
      nftnl_set_nlmsg_build_payload(nlh, x);
      nftnl_set_free(x);
    } else if (c == 'e') { /* e table set key[:data|@verdict[/chain]] ... */
      struct nftnl_set *x = nftnl_set_alloc();
      nftnl_set_set_str(x, NFTNL_SET_TABLE, a[1]);
      nftnl_set_set_str(x, NFTNL_SET_NAME, a[2]);
      nftnl_set_set_u32(x, NFTNL_SET_FAMILY, (uint32_t)fam);
      uint32_t id = setIdOf(a[1], a[2]);
      if (id) nftnl_set_set_u32(x, NFTNL_SET_ID, id);
      for (int k = 3; k < n; k++) {
        unsigned char key[64], d[64];
        char *colon = strchr(a[k], ':');
        char *at = strchr(a[k], '@');
        struct nftnl_set_elem *el = nftnl_set_elem_alloc();
        int kl = unhex(a[k], key, colon ? (int)(colon - a[k]) / 2 : at ? (int)(at - a[k]) / 2 : 64);
        nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, key, (uint32_t)kl);
        if (at) {
          nftnl_set_elem_set_u32(el, NFTNL_SET_ELEM_VERDICT, (uint32_t)atoi(at + 1));
          char *slash = strchr(at, '/');
          if (slash) nftnl_set_elem_set_str(el, NFTNL_SET_ELEM_CHAIN, slash + 1);
        }
        if (colon) {
          int dl = unhex(colon + 1, d, 64);
          nftnl_set_elem_set(el, NFTNL_SET_ELEM_DATA, d, (uint32_t)dl);
        }
        nftnl_set_elem_add(x, el);
      }
      nlh = nftHdr(s, NFT_MSG_NEWSETELEM, fam, NLM_F_CREATE);
      nftnl_set_elems_nlmsg_build_payload(nlh, x);
      nftnl_set_free(x);
    } else if (c == 'r') { /* r table chain comment|- expr... */
      struct nftnl_rule *x = nftnl_rule_alloc();
      nftnl_rule_set_u32(x, NFTNL_RULE_FAMILY, (uint32_t)fam);
      nftnl_rule_set_str(x, NFTNL_RULE_TABLE, a[1]);
      nftnl_rule_set_str(x, NFTNL_RULE_CHAIN, a[2]);
      for (int k = 4; k < n; k++) {
        char tmp[512];
        snprintf(tmp, sizeof(tmp), "%s", a[k]);
        nftnl_rule_add_expr(x, buildExpr(tmp, a[1]));
      }
      if (dash(a[3])) {
        struct nftnl_udata_buf *ud = nftnl_udata_buf_alloc(256);
        nftnl_udata_put_strz(ud, NFTNL_UDATA_RULE_COMMENT, a[3]);
        nftnl_rule_set_data(x, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(ud), nftnl_udata_buf_len(ud));
        nftnl_udata_buf_free(ud);
      }
      nlh = nftHdr(s, NFT_MSG_NEWRULE, fam, NLM_F_CREATE | NLM_F_APPEND);
      nftnl_rule_nlmsg_build_payload(nlh, x);
      nftnl_rule_free(x);
    } else {
      fprintf(stderr, "floor: unknown nft command %s\n", a[0]);
      exit(2);
    }
    s->len += NLMSG_ALIGN(nlh->nlmsg_len);
  }
  struct nlmsghdr *end = nftnl_batch_end(s->buf + s->len, s->seq++);
  s->len += NLMSG_ALIGN(end->nlmsg_len);
}

/* Deletes a table (by name) as one transaction. */
static void buildTableDelete(struct sock *s, int fam, const char *name) {
  struct nlmsghdr *b = nftnl_batch_begin(s->buf + s->len, s->seq++);
  s->len += NLMSG_ALIGN(b->nlmsg_len);
  struct nftnl_table *x = nftnl_table_alloc();
  nftnl_table_set_u32(x, NFTNL_TABLE_FAMILY, (uint32_t)fam);
  nftnl_table_set_str(x, NFTNL_TABLE_NAME, name);
  struct nlmsghdr *nlh = nftHdr(s, NFT_MSG_DELTABLE, fam, 0);
  nftnl_table_nlmsg_build_payload(nlh, x);
  nftnl_table_free(x);
  s->len += NLMSG_ALIGN(nlh->nlmsg_len);
  struct nlmsghdr *end = nftnl_batch_end(s->buf + s->len, s->seq++);
  s->len += NLMSG_ALIGN(end->nlmsg_len);
}

/* ───────────────────────────── setup ───────────────────────────── */

static int nthreads;

static int writeFile(const char *path, const char *value) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, value, strlen(value));
  close(fd);
  return n < 0 ? -1 : 0;
}

static int buildNode(struct node *n, struct sock *rt, struct sock *nf) {
  char path[512];
  snprintf(path, sizeof(path), "/run/netns/%s", n->netns);
  int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) return snprintf(n->err, sizeof(n->err), "open %s: %s", path, strerror(errno)), -1;
  close(fd);
  if (unshare(CLONE_NEWNET) < 0) return snprintf(n->err, sizeof(n->err), "unshare: %s", strerror(errno)), -1;
  if (mount("/proc/thread-self/ns/net", path, "none", MS_BIND, NULL) < 0)
    return snprintf(n->err, sizeof(n->err), "mount: %s", strerror(errno)), -1;
  for (int i = 0; i < n->nsysctls; i++)
    if (writeFile(n->sysctls[i].path, n->sysctls[i].value) < 0)
      return snprintf(n->err, sizeof(n->err), "%s: %s", n->sysctls[i].path, strerror(errno)), -1;
  if (sockOpen(rt, NETLINK_ROUTE) < 0 || sockOpen(nf, NETLINK_NETFILTER) < 0)
    return snprintf(n->err, sizeof(n->err), "socket: %s", strerror(errno)), -1;
  /* lo: up, with the mark */
  putLink(rt, RTM_NEWLINK, 0, 1, NULL, 1, 1, P.mark, -1);
  /* the veth, made from inside the node: eth0 here (index 2, the first after lo), its host end in the host */
  {
    struct nlmsghdr *nlh = msg(rt, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    ifm->ifi_change = IFF_UP;
    ifm->ifi_flags = n->up ? IFF_UP : 0;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, n->ifname);
    if (n->hasMac) mnl_attr_put(nlh, IFLA_ADDRESS, 6, n->mac);
    struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
    struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
    struct nlattr *peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
    struct ifinfomsg *pifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*pifm));
    pifm->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, n->hostVeth);
    mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)hostFd);
    mnl_attr_nest_end(nlh, peer);
    mnl_attr_nest_end(nlh, data);
    mnl_attr_nest_end(nlh, info);
    done(rt, nlh);
  }
  putLink(rt, RTM_NEWLINK, 0, 0, n->ifname, 0, 0, P.mark, -1);
  for (int i = 0; i < n->naddrs; i++) putAddr(rt, 2, &n->addrs[i]);
  for (int i = 0; i < n->nroutes; i++) putRoute(rt, &n->routes[i], n->routes[i].dev[0] ? 2 : 0);
  if (n->table >= 0) buildTable(nf, &P.tables[n->table]);
  /* both requests out, then both sets of acks */
  if (sendAll(rt) < 0 || sendAll(nf) < 0) return snprintf(n->err, sizeof(n->err), "%s%s", rt->err, nf->err), -1;
  int a = waitAcks(rt, NULL);
  /* the host end exists now: the host thread can enslave it */
  pthread_mutex_lock(&mu);
  n->ready = a == 0 ? 1 : -1;
  readyCount++;
  pthread_cond_signal(&cv);
  pthread_mutex_unlock(&mu);
  if (a < 0) return snprintf(n->err, sizeof(n->err), "rtnetlink %s: %s", n->netns, rt->err), -1;
  if (waitAcks(nf, NULL) < 0) return snprintf(n->err, sizeof(n->err), "nftables %s: %s", n->netns, nf->err), -1;
  sockClose(rt);
  sockClose(nf);
  return 0;
}

struct worker {
  pthread_t th;
  int index;
  int rc;
};

static void *workerMain(void *arg) {
  struct worker *w = arg;
  struct sock rt = {.fd = -1}, nf = {.fd = -1};
  for (int k = w->index; k < P.nnodes; k += nthreads) {
    if (buildNode(&P.nodes[k], &rt, &nf) < 0) {
      w->rc = -1;
      pthread_mutex_lock(&mu);
      if (!P.nodes[k].ready) {
        P.nodes[k].ready = -1;
        readyCount++;
        pthread_cond_signal(&cv);
      }
      pthread_mutex_unlock(&mu);
      /* the rest of this thread's nodes are not made: count them as failed for the host thread */
      for (int j = k + nthreads; j < P.nnodes; j += nthreads) {
        pthread_mutex_lock(&mu);
        P.nodes[j].ready = -1;
        readyCount++;
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&mu);
      }
      break;
    }
  }
  sockClose(&rt);
  sockClose(&nf);
  free(rt.buf);
  free(nf.buf);
  return NULL;
}

static int setup(int threads, char *err, size_t errlen) {
  nthreads = threads;
  readyCount = 0;
  for (int k = 0; k < P.nnodes; k++) P.nodes[k].ready = 0, P.nodes[k].err[0] = 0;
  struct worker ws[8];
  for (int i = 0; i < threads; i++) {
    ws[i].index = i;
    ws[i].rc = 0;
    pthread_create(&ws[i].th, NULL, workerMain, &ws[i]);
  }
  /* meanwhile, in the host namespace (this thread lives there) */
  struct sock rt = {.fd = -1}, nf = {.fd = -1};
  int rc = 0;
  sockOpen(&rt, NETLINK_ROUTE);
  sockOpen(&nf, NETLINK_NETFILTER);
  for (int i = 0; i < P.nhostSysctls; i++) writeFile(P.hostSysctls[i].path, P.hostSysctls[i].value);
  {
    struct nlmsghdr *nlh = msg(&rt, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO);
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    ifm->ifi_change = IFF_UP;
    ifm->ifi_flags = P.bridgeUp ? IFF_UP : 0;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, P.bridge);
    mnl_attr_put(nlh, IFLA_ADDRESS, 6, P.bridgeMac);
    struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
    struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
    mnl_attr_put_u8(nlh, IFLA_BR_MCAST_SNOOPING, (uint8_t)P.mcast);
    mnl_attr_put_u32(nlh, IFLA_BR_STP_STATE, (uint32_t)P.stp);
    mnl_attr_put_u32(nlh, IFLA_BR_FORWARD_DELAY, (uint32_t)P.fwdDelay);
    mnl_attr_nest_end(nlh, data);
    mnl_attr_nest_end(nlh, info);
    done(&rt, nlh);
  }
  int brIndex = 0;
  if (sendAll(&rt) < 0 || waitAcks(&rt, &brIndex) < 0 || !brIndex) {
    snprintf(err, errlen, "bridge: %s", rt.err);
    rc = -1;
  }
  if (!rc) {
    putLink(&rt, RTM_NEWLINK, 0, brIndex, NULL, 0, 0, P.mark, -1);
    if (P.uplink[0]) putLink(&rt, RTM_NEWLINK, 0, 0, P.uplink, 1, 1, NULL, brIndex);
    if (P.hostTable >= 0 && !P.hostTableLate) buildTable(&nf, &P.tables[P.hostTable]);
    if (sendAll(&rt) < 0 || sendAll(&nf) < 0 || waitAcks(&rt, NULL) < 0 || waitAcks(&nf, NULL) < 0) {
      snprintf(err, errlen, "host: %s %s", rt.err, nf.err);
      rc = -1;
    }
  }
  /* the host ends of the veths, as their nodes report them made */
  int handled = 0;
  char *seen = calloc((size_t)P.nnodes, 1);
  while (handled < P.nnodes) {
    pthread_mutex_lock(&mu);
    while (readyCount == handled) pthread_cond_wait(&cv, &mu);
    int upto = readyCount;
    pthread_mutex_unlock(&mu);
    for (int k = 0; k < P.nnodes; k++) {
      if (seen[k] || !P.nodes[k].ready) continue;
      seen[k] = 1;
      if (P.nodes[k].ready > 0 && !rc) {
        putLink(&rt, RTM_NEWLINK, 0, 0, P.nodes[k].hostVeth, 1, P.nodes[k].hostUp, P.mark, brIndex);
        if (P.nodes[k].noFlood) putNoFlood(&rt, P.nodes[k].hostVeth);
      }
    }
    handled = upto;
    if (!rc && (sendAll(&rt) < 0 || waitAcks(&rt, NULL) < 0)) {
      snprintf(err, errlen, "host veths: %s", rt.err);
      rc = -1;
    }
  }
  free(seen);
  if (!rc && P.hostTable >= 0 && P.hostTableLate) {
    buildTable(&nf, &P.tables[P.hostTable]);
    if (sendAll(&nf) < 0 || waitAcks(&nf, NULL) < 0) {
      snprintf(err, errlen, "host table: %s", nf.err);
      rc = -1;
    }
  }
  for (int i = 0; i < threads; i++) {
    pthread_join(ws[i].th, NULL);
    if (ws[i].rc && !rc) rc = -1;
  }
  if (rc && !err[0])
    for (int k = 0; k < P.nnodes; k++)
      if (P.nodes[k].err[0]) {
        snprintf(err, errlen, "%s", P.nodes[k].err);
        break;
      }
  sockClose(&rt);
  sockClose(&nf);
  free(rt.buf);
  free(nf.buf);
  return rc;
}

/* ───────────────────────────── teardown ───────────────────────────── */

static void deleteNamespaces(void) {
  char path[512];
  for (int k = 0; k < P.nnodes; k++) {
    snprintf(path, sizeof(path), "/run/netns/%s", P.nodes[k].netns);
    umount2(path, MNT_DETACH);
    unlink(path);
  }
}

static int deleteHost(int links, char *err, size_t errlen) {
  struct sock rt = {.fd = -1}, nf = {.fd = -1};
  sockOpen(&rt, NETLINK_ROUTE);
  sockOpen(&nf, NETLINK_NETFILTER);
  if (P.hostTable >= 0) {
    const struct table *t = &P.tables[P.hostTable];
    buildTableDelete(&nf, t->family, t->cmds[0].tok[1]);
  }
  if (links)
    for (int k = 0; k < P.nnodes; k++) putLink(&rt, RTM_DELLINK, 0, 0, P.nodes[k].hostVeth, 0, 0, NULL, -1);
  if (P.uplink[0]) putLink(&rt, RTM_NEWLINK, 0, 0, P.uplink, 0, 0, NULL, 0);
  putLink(&rt, RTM_DELLINK, 0, 0, P.bridge, 0, 0, NULL, -1);
  int rc = 0;
  if (sendAll(&nf) < 0 || sendAll(&rt) < 0 || waitAcks(&nf, NULL) < 0 || waitAcks(&rt, NULL) < 0) {
    snprintf(err, errlen, "host teardown: %s %s", nf.err, rt.err);
    rc = -1;
  }
  sockClose(&rt);
  sockClose(&nf);
  free(rt.buf);
  free(nf.buf);
  return rc;
}

static int teardown(const char *variant, char *err, size_t errlen) {
  if (!strcmp(variant, "ns-first")) {
    deleteNamespaces();
    return deleteHost(0, err, errlen);
  }
  if (!strcmp(variant, "host-first")) {
    int rc = deleteHost(0, err, errlen);
    deleteNamespaces();
    return rc;
  }
  if (!strcmp(variant, "links-first")) {
    int rc = deleteHost(1, err, errlen);
    deleteNamespaces();
    return rc;
  }
  snprintf(err, errlen, "unknown teardown variant %s", variant);
  return -1;
}

int main(void) {
  char *line = NULL;
  size_t cap = 0;
  setvbuf(stdout, NULL, _IOLBF, 0);
  while (getline(&line, &cap, stdin) > 0) {
    char cmd[32] = "", arg[1024] = "", err[1024] = "";
    sscanf(line, "%31s %1023s", cmd, arg);
    if (!strcmp(cmd, "quit")) break;
    if (!strcmp(cmd, "load")) {
      load(arg);
      if (hostFd >= 0) close(hostFd);
      hostFd = open(P.hostPath, O_RDONLY | O_CLOEXEC);
      /* this thread (and every thread it starts) lives in the host namespace */
      if (hostFd < 0 || setns(hostFd, CLONE_NEWNET) < 0) {
        printf("err host %s: %s\n", P.hostPath, strerror(errno));
        continue;
      }
      printf("ok\n");
      continue;
    }
    double t0 = now_us();
    int rc = !strcmp(cmd, "setup") ? setup(atoi(arg) > 0 && atoi(arg) <= 8 ? atoi(arg) : 2, err, sizeof(err))
             : !strcmp(cmd, "teardown") ? teardown(arg, err, sizeof(err))
                                          : (snprintf(err, sizeof(err), "unknown command %s", cmd), -1);
    double t1 = now_us();
    if (rc) printf("err %s\n", err);
    else printf("ok %.0f\n", t1 - t0);
  }
  return 0;
}
