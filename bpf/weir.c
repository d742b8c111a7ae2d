// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
//go:build ignore

/*
 * weir's in-kernel layer 4 balancer: a tc ingress program doing full NAT.
 *
 * Client to VIP: the packet's destination becomes a backend chosen through the
 * service's Maglev table and its source becomes the balancer's SNAT address
 * and an allocated port. Backend to SNAT address (the reply): the reverse
 * rewrite. Both directions go out through bpf_fib_lookup and a redirect, so
 * the program must be attached to every interface clients and backends reach
 * the balancer through. Anything else passes untouched.
 *
 * Map layout and naming rules live in weir.h.
 */

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "weir.h"

/* Debian's uapi headers carry it, others may not; the kernel added it in 6.16. */
#ifndef BPF_F_IPV6
#define BPF_F_IPV6 (1ULL << 7)
#endif

#define AF_INET 2
#define AF_INET6 10
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define TCP_CSUM_OFF 16
#define UDP_CSUM_OFF 6
#define TCP_MIN_LEN 20
#define UDP_LEN 8
#define IPV4_ADDRS_OFF (ETH_HLEN + 12)
#define IPV4_CSUM_OFF (ETH_HLEN + 10)
#define IPV6_ADDRS_OFF (ETH_HLEN + 8)
#define IPV6_HDR_LEN 40

char __license[] SEC("license") = "Dual MIT/GPL";

/* Set by the loader before the program is loaded; must match the map sizes. */
const volatile __u32 weir_table_size = WEIR_DEFAULT_TABLE_SIZE;
const volatile __u32 weir_max_backends = WEIR_DEFAULT_MAX_BACKENDS;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * WEIR_DEFAULT_MAX_SERVICES);
	__type(key, struct vip_key);
	__type(value, struct vip_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_v1_vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WEIR_DEFAULT_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct active_generation);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_v1_active SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * WEIR_DEFAULT_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct service);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_v1_svc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * WEIR_DEFAULT_MAX_SERVICES * WEIR_DEFAULT_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_v1_backend SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * WEIR_DEFAULT_MAX_SERVICES * WEIR_DEFAULT_TABLE_SIZE);
	__type(key, __u32);
	__type(value, struct maglev_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_v1_maglev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * WEIR_DEFAULT_MAX_SERVICES * WEIR_DEFAULT_MAX_BACKENDS);
	__type(key, struct live_key);
	__type(value, struct live_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_v1_live SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEIR_DEFAULT_MAX_FLOWS);
	__type(key, struct flow);
	__type(value, struct nat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_v1_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEIR_DEFAULT_MAX_FLOWS);
	__type(key, struct flow);
	__type(value, struct nat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_v1_rnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WEIR_DEFAULT_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_v1_svcstat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * WEIR_DEFAULT_MAX_SERVICES * WEIR_DEFAULT_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_v1_bestat SEC(".maps");

/* A parsed TCP or UDP packet. */
struct packet {
	struct flow flow;
	__u32 l4_off;   /* offset of the TCP or UDP header */
	__u32 csum_off; /* offset of the L4 checksum */
	__u16 ip_len;   /* length from the IP header on, for the MTU check */
	__u16 pad;
};

/* Outcome of the conntrack lookup for a client packet. */
enum ct_state {
	CT_MISS,        /* no usable entry: choose a backend */
	CT_SNAT_LOST,   /* backend still live, reverse entry gone: new SNAT port */
	CT_ESTABLISHED, /* forward as before */
};

static __always_inline int parse_l4(struct __sk_buff *skb, struct packet *p)
{
	__be16 ports[2];
	__u32 min_len = p->flow.proto == IPPROTO_TCP ? TCP_MIN_LEN : UDP_LEN;

	if (skb->len < p->l4_off + min_len)
		return -1;
	if (bpf_skb_load_bytes(skb, p->l4_off, ports, sizeof(ports)) < 0)
		return -1;
	p->flow.sport = bpf_ntohs(ports[0]);
	p->flow.dport = bpf_ntohs(ports[1]);
	p->csum_off = p->l4_off + (p->flow.proto == IPPROTO_TCP ? TCP_CSUM_OFF : UDP_CSUM_OFF);
	return 0;
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, struct packet *p)
{
	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
		return -1;
	if (ip.version != 4 || ip.ihl < 5)
		return -1;
	/* A fragment's ports are not where we would look for them. */
	if (ip.frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return -1;
	if (ip.protocol != IPPROTO_TCP && ip.protocol != IPPROTO_UDP)
		return -1;
	__builtin_memcpy(p->flow.src, &ip.saddr, 4);
	__builtin_memcpy(p->flow.dst, &ip.daddr, 4);
	p->flow.proto = ip.protocol;
	p->flow.ip_version = WEIR_IPV4;
	p->l4_off = ETH_HLEN + ip.ihl * 4;
	p->ip_len = bpf_ntohs(ip.tot_len);
	return parse_l4(skb, p);
}

/*
 * Walks hop-by-hop and destination options headers, the only extension
 * headers that neither move the ports (fragment) nor change where the packet
 * is going (routing); anything else is not ours to rewrite.
 */
static __always_inline int skip_ipv6_ext(struct __sk_buff *skb, __u8 *next, __u32 *off)
{
	struct {
		__u8 next;
		__u8 len;
	} ext;

	for (int i = 0; i < WEIR_MAX_IPV6_EXT; i++) {
		if (*next == IPPROTO_TCP || *next == IPPROTO_UDP)
			return 0;
		if (*next != IPPROTO_HOPOPTS && *next != IPPROTO_DSTOPTS)
			return -1;
		if (bpf_skb_load_bytes(skb, *off, &ext, sizeof(ext)) < 0)
			return -1;
		*next = ext.next;
		*off += (ext.len + 1) * 8;
	}
	return *next == IPPROTO_TCP || *next == IPPROTO_UDP ? 0 : -1;
}

static __always_inline int parse_ipv6(struct __sk_buff *skb, struct packet *p)
{
	struct ipv6hdr ip6;
	__u32 off = ETH_HLEN + IPV6_HDR_LEN;
	__u8 next;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)) < 0)
		return -1;
	if (ip6.version != 6)
		return -1;
	next = ip6.nexthdr;
	if (skip_ipv6_ext(skb, &next, &off) < 0)
		return -1;
	__builtin_memcpy(p->flow.src, &ip6.saddr, 16);
	__builtin_memcpy(p->flow.dst, &ip6.daddr, 16);
	p->flow.proto = next;
	p->flow.ip_version = WEIR_IPV6;
	p->l4_off = off;
	p->ip_len = bpf_ntohs(ip6.payload_len) + IPV6_HDR_LEN;
	return parse_l4(skb, p);
}

static __always_inline int parse_packet(struct __sk_buff *skb, struct packet *p)
{
	__builtin_memset(p, 0, sizeof(*p));
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return parse_ipv4(skb, p);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(skb, p);
	return -1;
}

static __always_inline __u32 rol32(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

/* MurmurHash3's finalizer: every input bit affects every output bit. */
static __always_inline __u32 fmix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/*
 * MurmurHash3 (x86, 32 bit) over the flow's ten words. The Go tests carry an
 * independent copy, so a change here must change the tests' expectations too.
 */
static __always_inline __u32 flow_hash(const struct flow *f, __u32 seed)
{
	const __u32 *w = (const __u32 *)f;
	__u32 h = seed;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*f) / 4); i++) {
		__u32 k = w[i] * 0xcc9e2d51;
		k = rol32(k, 15) * 0x1b873593;
		h = rol32(h ^ k, 13) * 5 + 0xe6546b64;
	}
	return fmix32(h ^ sizeof(*f));
}

static __always_inline int nat_equal(const struct nat *a, const struct nat *b)
{
	const __u32 *x = (const __u32 *)a;
	const __u32 *y = (const __u32 *)b;
	__u32 diff = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*a) / 4); i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}

/* The reply 5-tuple (backend to SNAT address) of a forward translation. */
static __always_inline void reply_flow(const struct nat *fwd, __u8 proto, __u8 ip_version, struct flow *out)
{
	__builtin_memset(out, 0, sizeof(*out));
	__builtin_memcpy(out->src, fwd->dst, 16);
	__builtin_memcpy(out->dst, fwd->src, 16);
	out->sport = fwd->dport;
	out->dport = fwd->sport;
	out->proto = proto;
	out->ip_version = ip_version;
}

/* How the reply must be rewritten: back to VIP as source and client as destination. */
static __always_inline void reverse_nat(const struct flow *client, __u32 service_id, struct nat *out)
{
	__builtin_memcpy(out->src, client->dst, 16);
	__builtin_memcpy(out->dst, client->src, 16);
	out->sport = client->dport;
	out->dport = client->sport;
	out->service_id = service_id;
}

/* Whether the reverse-NAT entry of fwd still leads back to this client flow. */
static __always_inline int reverse_is_ours(const struct packet *p, const struct nat *fwd)
{
	struct flow rk;
	struct nat want;
	struct nat *got;

	reply_flow(fwd, p->flow.proto, p->flow.ip_version, &rk);
	got = bpf_map_lookup_elem(&weir_v1_rnat, &rk);
	if (!got)
		return 0;
	reverse_nat(&p->flow, fwd->service_id, &want);
	return nat_equal(got, &want);
}

static __always_inline struct live_value *live_backend(__u32 service_id, const __u8 *addr, __u16 port,
						       __u8 ip_version)
{
	struct live_key lk = {
		.service_id = service_id,
		.port = port,
		.ip_version = ip_version,
	};

	__builtin_memcpy(lk.addr, addr, 16);
	return bpf_map_lookup_elem(&weir_v1_live, &lk);
}

static __always_inline enum ct_state ct_lookup(const struct packet *p, __u32 service_id, struct nat *fwd,
					       __u32 *slot)
{
	struct live_value *live;
	struct nat *ct;

	ct = bpf_map_lookup_elem(&weir_v1_ct, &p->flow);
	if (!ct)
		return CT_MISS;
	__builtin_memcpy(fwd, ct, sizeof(*fwd));
	if (fwd->service_id != service_id)
		return CT_MISS;
	live = live_backend(service_id, fwd->dst, fwd->dport, p->flow.ip_version);
	if (!live)
		return CT_MISS;
	*slot = live->slot;
	return reverse_is_ours(p, fwd) ? CT_ESTABLISHED : CT_SNAT_LOST;
}

/* Chooses a backend through the live half's Maglev table; returns a drop reason or -1. */
static __always_inline int pick_backend(const struct packet *p, __u32 half_index, const struct service *svc,
					struct backend *out)
{
	__u32 table_size = weir_table_size;
	struct maglev_entry *entry;
	struct backend *be;
	__u32 key;

	if (svc->backend_count == 0)
		return DROP_TABLE_EMPTY;
	key = half_index * table_size + flow_hash(&p->flow, WEIR_HASH_SEED_FLOW) % table_size;
	entry = bpf_map_lookup_elem(&weir_v1_maglev, &key);
	if (!entry || entry->backend >= svc->backend_count)
		return DROP_NO_BACKEND;
	key = half_index * weir_max_backends + entry->backend;
	be = bpf_map_lookup_elem(&weir_v1_backend, &key);
	if (!be || be->ip_version != p->flow.ip_version)
		return DROP_NO_BACKEND;
	__builtin_memcpy(out, be, sizeof(*out));
	return -1;
}

/*
 * Claims a source port on fwd->src towards fwd->dst:fwd->dport by inserting
 * the reverse entry with BPF_NOEXIST, so two CPUs can never share a port.
 *
 * Probe i tries port MIN + fmix32(start + i * golden) % COUNT: probes are
 * independent, so with a fraction a of the ports taken all of them fail with
 * probability a^PROBES, where linear probing would run into clusters. The
 * sequence depends on the flow only: after its conntrack entry is lost the
 * same flow lands on the same port again, and an entry that already belongs
 * to this flow is taken over.
 */
static __always_inline int alloc_snat_port(const struct packet *p, struct nat *fwd)
{
	__u32 start = flow_hash(&p->flow, WEIR_HASH_SEED_SNAT);
	struct flow rk;
	struct nat rv;

	reply_flow(fwd, p->flow.proto, p->flow.ip_version, &rk);
	reverse_nat(&p->flow, fwd->service_id, &rv);
	for (__u32 i = 0; i < WEIR_SNAT_PROBES; i++) {
		__u16 port = WEIR_SNAT_PORT_MIN + fmix32(start + i * WEIR_SNAT_PROBE_STEP) % WEIR_SNAT_PORT_COUNT;
		struct nat *cur;

		rk.dport = port;
		if (bpf_map_update_elem(&weir_v1_rnat, &rk, &rv, BPF_NOEXIST) == 0) {
			fwd->sport = port;
			return 0;
		}
		cur = bpf_map_lookup_elem(&weir_v1_rnat, &rk);
		if (cur && nat_equal(cur, &rv)) {
			fwd->sport = port;
			return 0;
		}
	}
	return -1;
}

static __always_inline int l4_csum_flags(const struct packet *p)
{
	/* An IPv4 UDP checksum of zero means "none" and must stay zero. */
	return p->flow.proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

static __always_inline int rewrite_ipv4_addrs(struct __sk_buff *skb, const struct packet *p, const struct nat *to)
{
	__be32 from_addrs[2], to_addrs[2];
	__s64 diff;

	__builtin_memcpy(&from_addrs[0], p->flow.src, 4);
	__builtin_memcpy(&from_addrs[1], p->flow.dst, 4);
	__builtin_memcpy(&to_addrs[0], to->src, 4);
	__builtin_memcpy(&to_addrs[1], to->dst, 4);
	diff = bpf_csum_diff(from_addrs, sizeof(from_addrs), to_addrs, sizeof(to_addrs), 0);
	if (diff < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, IPV4_ADDRS_OFF, to_addrs, sizeof(to_addrs), 0) < 0)
		return -1;
	if (bpf_l3_csum_replace(skb, IPV4_CSUM_OFF, 0, diff, 0) < 0)
		return -1;
	return bpf_l4_csum_replace(skb, p->csum_off, 0, diff, BPF_F_PSEUDO_HDR | l4_csum_flags(p));
}

static __always_inline int rewrite_ipv6_addrs(struct __sk_buff *skb, const struct packet *p, const struct nat *to)
{
	__u64 flags = BPF_F_PSEUDO_HDR | l4_csum_flags(p);
	__s64 diff;
	long err;

	/* flow.src/dst and nat.src/dst are adjacent, as in the IPv6 header. */
	diff = bpf_csum_diff((__be32 *)&p->flow, 32, (__be32 *)to, 32, 0);
	if (diff < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, IPV6_ADDRS_OFF, to, 32, 0) < 0)
		return -1;
	/*
	 * BPF_F_IPV6 keeps skb->csum right for CHECKSUM_COMPLETE packets, whose
	 * IPv6 header carries no checksum to absorb the change; kernels before
	 * 6.16 reject the flag, and there the old behaviour is all there is.
	 */
	err = bpf_l4_csum_replace(skb, p->csum_off, 0, diff, flags | BPF_F_IPV6);
	if (err == -22 /* EINVAL */)
		err = bpf_l4_csum_replace(skb, p->csum_off, 0, diff, flags);
	return err;
}

static __always_inline int rewrite_ports(struct __sk_buff *skb, const struct packet *p, const struct nat *to)
{
	__be16 from_ports[2] = {bpf_htons(p->flow.sport), bpf_htons(p->flow.dport)};
	__be16 to_ports[2] = {bpf_htons(to->sport), bpf_htons(to->dport)};
	__u32 from_word, to_word;

	__builtin_memcpy(&from_word, from_ports, 4);
	__builtin_memcpy(&to_word, to_ports, 4);
	if (bpf_skb_store_bytes(skb, p->l4_off, to_ports, sizeof(to_ports), 0) < 0)
		return -1;
	return bpf_l4_csum_replace(skb, p->csum_off, from_word, to_word, sizeof(to_word) | l4_csum_flags(p));
}

/*
 * Rewrites the packet's 5-tuple to `to`, fixing the IPv4 header checksum and
 * the L4 checksum incrementally (the helpers also handle CHECKSUM_PARTIAL
 * packets, whose L4 field holds only the pseudo-header sum).
 */
static __always_inline int rewrite(struct __sk_buff *skb, const struct packet *p, const struct nat *to)
{
	int err;

	if (p->flow.ip_version == WEIR_IPV4)
		err = rewrite_ipv4_addrs(skb, p, to);
	else
		err = rewrite_ipv6_addrs(skb, p, to);
	if (err < 0)
		return err;
	return rewrite_ports(skb, p, to);
}

/*
 * Sends the rewritten packet towards its new destination. When the FIB has no
 * answer for us (local destination, forwarding disabled, MTU exceeded, ...)
 * the kernel's own routing takes over.
 */
static __always_inline int forward(struct __sk_buff *skb, const struct packet *p, const struct nat *to)
{
	struct bpf_fib_lookup fib = {
		.l4_protocol = p->flow.proto,
		.sport = bpf_htons(to->sport),
		.dport = bpf_htons(to->dport),
		.tot_len = p->ip_len,
		.ifindex = skb->ifindex,
	};
	struct bpf_redir_neigh nh = {};
	__u8 macs[2 * ETH_ALEN];
	long rc;

	if (p->flow.ip_version == WEIR_IPV4) {
		fib.family = AF_INET;
		__builtin_memcpy(&fib.ipv4_src, to->src, 4);
		__builtin_memcpy(&fib.ipv4_dst, to->dst, 4);
	} else {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, to->src, 16);
		__builtin_memcpy(fib.ipv6_dst, to->dst, 16);
	}
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		__builtin_memcpy(macs, fib.dmac, ETH_ALEN);
		__builtin_memcpy(macs + ETH_ALEN, fib.smac, ETH_ALEN);
		if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0)
			return TC_ACT_OK;
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		/* The lookup left the next hop (gateway or destination) in *_dst. */
		nh.nh_family = fib.family;
		__builtin_memcpy(nh.ipv6_nh, fib.ipv6_dst, sizeof(nh.ipv6_nh));
		return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
	}
	return TC_ACT_OK;
}

static __always_inline void count(struct counters *c, __u32 bytes, int new_flow)
{
	c->packets++;
	c->bytes += bytes;
	c->new_flows += new_flow;
}

static __always_inline struct counters *backend_counters(__u32 service_id, __u32 slot)
{
	__u32 key = service_id * 2 * weir_max_backends + slot;

	return bpf_map_lookup_elem(&weir_v1_bestat, &key);
}

/* Out of line: drops are rare, and its signature gives bpf2go the drop_reason enum. */
static __noinline int drop(struct counters *svc_stats, struct counters *be_stats, enum drop_reason reason)
{
	if (reason >= DROP_REASONS)
		return TC_ACT_SHOT;
	svc_stats->drops[reason]++;
	if (be_stats)
		be_stats->drops[reason]++;
	return TC_ACT_SHOT;
}

/* A client packet to a VIP: choose or recall the backend, translate, forward. */
static __always_inline int handle_vip(struct __sk_buff *skb, struct packet *p, __u32 service_id)
{
	struct counters *svc_stats, *be_stats;
	struct active_generation *active;
	struct service *svc;
	struct nat fwd = {};
	struct backend be;
	enum ct_state state;
	__u32 half_index, slot = 0;
	int reason, new_flow = 0;

	active = bpf_map_lookup_elem(&weir_v1_active, &service_id);
	if (!active || active->generation == 0)
		return TC_ACT_OK;
	half_index = service_id * 2 + (active->generation & 1);
	svc = bpf_map_lookup_elem(&weir_v1_svc, &half_index);
	svc_stats = bpf_map_lookup_elem(&weir_v1_svcstat, &service_id);
	if (!svc || !svc_stats)
		return TC_ACT_OK;

	state = ct_lookup(p, service_id, &fwd, &slot);
	if (state == CT_MISS) {
		reason = pick_backend(p, half_index, svc, &be);
		if (reason >= 0)
			return drop(svc_stats, NULL, reason);
		slot = be.slot;
		__builtin_memcpy(fwd.dst, be.addr, 16);
		fwd.dport = be.port;
		fwd.service_id = service_id;
	}
	be_stats = backend_counters(service_id, slot);
	if (state != CT_ESTABLISHED) {
		__builtin_memcpy(fwd.src, svc->snat, 16);
		if (alloc_snat_port(p, &fwd) < 0)
			return drop(svc_stats, be_stats, DROP_SNAT_EXHAUSTED);
		bpf_map_update_elem(&weir_v1_ct, &p->flow, &fwd, BPF_ANY);
		new_flow = 1;
	}
	if (rewrite(skb, p, &fwd) < 0)
		return drop(svc_stats, be_stats, DROP_REWRITE_FAILED);
	count(svc_stats, skb->len, new_flow);
	if (be_stats)
		count(be_stats, skb->len, new_flow);
	return forward(skb, p, &fwd);
}

/* A backend's reply to a SNAT address and port we handed out: translate back. */
static __always_inline int handle_reply(struct __sk_buff *skb, struct packet *p, const struct nat *rev)
{
	struct counters *svc_stats, *be_stats = NULL;
	struct live_value *live;
	struct nat to;

	__builtin_memcpy(&to, rev, sizeof(to));
	svc_stats = bpf_map_lookup_elem(&weir_v1_svcstat, &to.service_id);
	live = live_backend(to.service_id, p->flow.src, p->flow.sport, p->flow.ip_version);
	if (live)
		be_stats = backend_counters(to.service_id, live->slot);
	if (rewrite(skb, p, &to) < 0) {
		if (svc_stats)
			return drop(svc_stats, be_stats, DROP_REWRITE_FAILED);
		return TC_ACT_SHOT;
	}
	if (svc_stats)
		count(svc_stats, skb->len, 0);
	if (be_stats)
		count(be_stats, skb->len, 0);
	return forward(skb, p, &to);
}

SEC("tc")
int weir_ingress(struct __sk_buff *skb)
{
	struct packet p;
	struct vip_key vk = {};
	struct vip_value *vip;
	struct nat *rev;

	if (parse_packet(skb, &p) < 0)
		return TC_ACT_OK;

	__builtin_memcpy(vk.addr, p.flow.dst, 16);
	vk.port = p.flow.dport;
	vk.proto = p.flow.proto;
	vk.ip_version = p.flow.ip_version;
	vip = bpf_map_lookup_elem(&weir_v1_vips, &vk);
	if (vip)
		return handle_vip(skb, &p, vip->service_id);

	rev = bpf_map_lookup_elem(&weir_v1_rnat, &p.flow);
	if (rev)
		return handle_reply(skb, &p, rev);
	return TC_ACT_OK;
}
