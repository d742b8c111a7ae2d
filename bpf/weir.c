// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
//go:build ignore

/*
 * weir's in-kernel layer 4 balancer: a tc ingress program doing full NAT, or
 * direct server return with IP-in-IP encapsulation per service (dsr.h).
 * Compiled with -DWEIR_XDP, the same source is the XDP program weir_xdp:
 * everything the two hooks do differently is in hook.h.
 *
 * Client to VIP: the packet's destination becomes a backend chosen through the
 * service's Maglev table and its source becomes the balancer's SNAT address
 * and an allocated port. Backend to SNAT address (the reply): the reverse
 * rewrite. Both directions go out through bpf_fib_lookup and a redirect, so
 * the program must be attached to every interface clients and backends reach
 * the balancer through. ICMP errors about a translated flow (destination
 * unreachable, time exceeded, packet too big) are translated like the flow's
 * packets and go to the side owning it (icmp.h, icmp_nat.h), so that path MTU
 * discovery works through the VIP. Anything else passes untouched.
 *
 * Established packets take a short path: one conntrack lookup gives the
 * rewrite, its checksum deltas, the counter slot and the cached forwarding
 * decision, checked against the service's generation and the cache's age.
 * Everything else (new flows, table changes, an entry older than the flow
 * cache TTL, a packet longer than any the FIB has accepted for the flow)
 * takes the full path, which refreshes the entry.
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
#define TCP_FLAGS_OFF 13
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_RST 0x04
#define UDP_LEN 8
#define IPV4_ADDRS_OFF (ETH_HLEN + 12)
#define IPV4_CSUM_OFF (ETH_HLEN + 10)
#define IPV6_ADDRS_OFF (ETH_HLEN + 8)
#define IPV6_HDR_LEN 40
/* Bound on header offsets, so that the verifier can check packet pointers. */
#define MAX_HDR_OFF 0x3fff

char __license[] SEC("license") = "Dual MIT/GPL";

/* Set by the loader before the program is loaded; must match the map sizes. */
const volatile __u32 weir_table_size = WEIR_DEFAULT_TABLE_SIZE;
const volatile __u32 weir_max_backends = WEIR_DEFAULT_MAX_BACKENDS;
/* Set by the loader: how long an established flow trusts its ct_entry. */
const volatile __u64 weir_flow_cache_ttl_ns = WEIR_DEFAULT_FLOW_CACHE_TTL_NS;
/* Set by the loader: how long a flow must be idle before its SNAT port is reclaimed. */
const volatile __u64 weir_closed_timeout_ns = WEIR_DEFAULT_CLOSED_TIMEOUT_NS;
const volatile __u64 weir_tcp_idle_timeout_ns = WEIR_DEFAULT_TCP_IDLE_TIMEOUT_NS;
const volatile __u64 weir_udp_idle_timeout_ns = WEIR_DEFAULT_UDP_IDLE_TIMEOUT_NS;

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
	__type(value, struct ct_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_v1_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEIR_DEFAULT_MAX_FLOWS);
	__type(key, struct flow);
	__type(value, struct ct_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_v1_rnat SEC(".maps");

/*
 * One entry: the ports a packet's destination port must be in for the
 * program to look it up in weir_v1_rnat, the smallest range holding every
 * service's SNAT ports (of both halves, so that flows keep their replies
 * across a range change). Read once per packet: an array lookup the
 * verifier inlines, where a service lookup would need a hash lookup.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct port_range);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_v1_reply_ports SEC(".maps");

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

/*
 * Where alloc_snat_port builds the reverse entry it inserts: on the stack
 * it would push the deepest call chain past the verifier's 512 bytes. Not
 * pinned: it holds nothing between packets.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ct_entry);
} weir_scratch SEC(".maps");

/* A parsed TCP or UDP packet. */
struct packet {
	struct flow flow;
	__u32 l4_off;   /* offset of the TCP or UDP header */
	__u32 csum_off; /* offset of the L4 checksum */
	__u16 ip_len;   /* length from the IP header on, for the MTU check */
	__u8 tcp_flags; /* the TCP header's FIN and RST bits; 0 for UDP */
	__u8 pad;
};

/* Outcome of checking a client packet's conntrack entry on the full path. */
enum ct_state {
	CT_MISS,        /* no usable entry: choose a backend */
	CT_SNAT_LOST,   /* backend still live, reverse entry gone: new SNAT port */
	CT_ESTABLISHED, /* forward as before */
};

/* A forwarding outcome that is never cached, beside enum fwd_action's. */
#define FWD_NEIGH 3 /* bpf_redirect_neigh: the next hop's MAC is not known yet */
#define FWD_TOO_BIG 4 /* the route's MTU does not take the packet: NAT passes it to the kernel */

/* Returned by parse_packet for an ICMP or ICMPv6 packet, parsed up to its ICMP header. */
#define PARSE_ICMP 1

/* Returned by the short path when the packet needs the full one. */
#define NOT_HANDLED (-1)

#include "hook.h"

static __always_inline int parse_l4(struct hook_ctx *ctx, struct packet *p)
{
	__be16 *ports;

	if (p->flow.proto == IPPROTO_TCP) {
		__u8 *tcp = packet_at(ctx, p->l4_off, TCP_MIN_LEN);

		if (!tcp)
			return -1;
		/* Closing packets end a flow's claim on its SNAT port. */
		p->tcp_flags = tcp[TCP_FLAGS_OFF] & (TCP_FLAG_FIN | TCP_FLAG_RST);
		ports = (__be16 *)tcp;
		p->csum_off = p->l4_off + TCP_CSUM_OFF;
	} else {
		ports = packet_at(ctx, p->l4_off, UDP_LEN);
		p->csum_off = p->l4_off + UDP_CSUM_OFF;
	}
	if (!ports)
		return -1;
	p->flow.sport = bpf_ntohs(ports[0]);
	p->flow.dport = bpf_ntohs(ports[1]);
	return 0;
}

static __always_inline int parse_ipv4(struct hook_ctx *ctx, struct packet *p)
{
	struct iphdr *ip = packet_at(ctx, ETH_HLEN, sizeof(*ip));

	if (!ip || ip->version != 4 || ip->ihl < 5)
		return -1;
	/* A fragment's ports are not where we would look for them. */
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return -1;
	__builtin_memcpy(p->flow.src, &ip->saddr, 4);
	__builtin_memcpy(p->flow.dst, &ip->daddr, 4);
	p->flow.proto = ip->protocol;
	p->flow.ip_version = WEIR_IPV4;
	p->l4_off = ETH_HLEN + ip->ihl * 4;
	p->ip_len = bpf_ntohs(ip->tot_len);
	if (p->flow.proto == IPPROTO_ICMP)
		return PARSE_ICMP;
	if (p->flow.proto != IPPROTO_TCP && p->flow.proto != IPPROTO_UDP)
		return -1;
	return parse_l4(ctx, p);
}

/*
 * Walks hop-by-hop and destination options headers, the only extension
 * headers that neither move the ports (fragment) nor change where the packet
 * is going (routing), up to TCP, UDP or ICMPv6; anything else is not ours
 * to rewrite.
 */
static __always_inline int skip_ipv6_ext(struct hook_ctx *ctx, __u8 *next, __u32 *off)
{
	__u8 *ext;

	for (int i = 0; i < WEIR_MAX_IPV6_EXT; i++) {
		if (*next == IPPROTO_TCP || *next == IPPROTO_UDP || *next == IPPROTO_ICMPV6)
			return 0;
		if (*next != IPPROTO_HOPOPTS && *next != IPPROTO_DSTOPTS)
			return -1;
		ext = packet_at(ctx, *off, 2);
		if (!ext)
			return -1;
		*next = ext[0];
		*off += (ext[1] + 1) * 8;
	}
	return *next == IPPROTO_TCP || *next == IPPROTO_UDP || *next == IPPROTO_ICMPV6 ? 0 : -1;
}

static __always_inline int parse_ipv6(struct hook_ctx *ctx, struct packet *p)
{
	struct ipv6hdr *ip6 = packet_at(ctx, ETH_HLEN, sizeof(*ip6));
	__u32 off = ETH_HLEN + IPV6_HDR_LEN;
	__u8 next;

	if (!ip6 || ip6->version != 6)
		return -1;
	__builtin_memcpy(p->flow.src, &ip6->saddr, 16);
	__builtin_memcpy(p->flow.dst, &ip6->daddr, 16);
	p->ip_len = bpf_ntohs(ip6->payload_len) + IPV6_HDR_LEN;
	next = ip6->nexthdr;
	if (skip_ipv6_ext(ctx, &next, &off) < 0)
		return -1;
	p->flow.proto = next;
	p->flow.ip_version = WEIR_IPV6;
	p->l4_off = off;
	if (next == IPPROTO_ICMPV6)
		return PARSE_ICMP;
	return parse_l4(ctx, p);
}

/*
 * Parses the packet into p: 0 for TCP or UDP (ports parsed), PARSE_ICMP for
 * ICMP or ICMPv6 (parsed up to the ICMP header, for icmp_nat), -1 for
 * anything to pass untouched.
 */
static __always_inline int parse_packet(struct hook_ctx *ctx, struct packet *p)
{
	__be16 proto = hook_protocol(ctx);

	__builtin_memset(p, 0, sizeof(*p));
	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(ctx, p);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(ctx, p);
	return -1;
}

/*
 * Whether port is in the range the balancer hands out SNAT ports from, so
 * that a packet to it may be a reply. Any other packet skips the reverse
 * lookup: the balancer host's own connections, whose ports the kernel
 * picks outside every SNAT range, are never looked up, let alone taken.
 */
static __always_inline int is_reply_port(__u16 port)
{
	struct port_range *r;
	__u32 zero = 0;

	r = bpf_map_lookup_elem(&weir_v1_reply_ports, &zero);
	return r && (__u32)port - r->first < r->count;
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

/* One's complement addition with the end-around carry. */
static __always_inline __u32 csum_add(__u32 a, __u32 b)
{
	a += b;
	return a + (a < b);
}

/*
 * The one's complement delta that turns a checksum over from[] into one over
 * to[] (words as they lie in the packet), as bpf_csum_diff would compute it.
 */
static __always_inline __u32 csum_delta(const __u32 *from, const __u32 *to, const int words)
{
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < words; i++)
		sum = csum_add(csum_add(sum, ~from[i]), to[i]);
	return sum;
}

/* The delta of rewriting the ports (host order) sport, dport to to_sport, to_dport. */
static __always_inline __u32 csum_delta_ports(__u16 sport, __u16 dport, __u16 to_sport, __u16 to_dport)
{
	__be16 from[2] = {bpf_htons(sport), bpf_htons(dport)};
	__be16 to[2] = {bpf_htons(to_sport), bpf_htons(to_dport)};

	return csum_delta((const __u32 *)from, (const __u32 *)to, 1);
}

/* Fills e's checksum deltas for rewriting packets of flow f to e->nat. */
static __always_inline void csum_deltas(const struct flow *f, struct ct_entry *e)
{
	/* flow.src/dst and nat.src/dst are adjacent, as in both IP headers. */
	if (f->ip_version == WEIR_IPV4) {
		__u32 from[2], to[2];

		__builtin_memcpy(&from[0], f->src, 4);
		__builtin_memcpy(&from[1], f->dst, 4);
		__builtin_memcpy(&to[0], e->nat.src, 4);
		__builtin_memcpy(&to[1], e->nat.dst, 4);
		e->csum_addrs = csum_delta(from, to, 2);
	} else {
		e->csum_addrs = csum_delta((const __u32 *)f, (const __u32 *)&e->nat, 8);
	}
	e->csum_ports = csum_delta_ports(f->sport, f->dport, e->nat.sport, e->nat.dport);
}

/* Applies delta to a 16-bit checksum field, as bpf_l3_csum_replace does. */
static __always_inline __u16 csum_apply(__u16 check, __u32 delta)
{
	__u32 sum = csum_add(delta, ~(__u32)check);

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline int addr_equal(const __u8 *a, const __u8 *b)
{
	const __u32 *x = (const __u32 *)a;
	const __u32 *y = (const __u32 *)b;

	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
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

/*
 * Whether the reverse-NAT entry of fwd still leads back to this client flow
 * (and is not being reclaimed). Out of line: the full path alone asks, and
 * its locals would otherwise add to the stack frame alloc_snat_port's sits
 * on.
 */
static __noinline int reverse_is_ours(const struct packet *p, const struct nat *fwd)
{
	struct flow rk;
	struct nat want;
	struct ct_entry *got;

	reply_flow(fwd, p->flow.proto, p->flow.ip_version, &rk);
	got = bpf_map_lookup_elem(&weir_v1_rnat, &rk);
	if (!got || got->seen == WEIR_SEEN_RECLAIMING)
		return 0;
	reverse_nat(&p->flow, fwd->service_id, &want);
	return nat_equal(&got->nat, &want);
}

/*
 * The WEIR_TCP_* bits packet p adds to its flow's entries; client says
 * whether p goes from client to backend. 0 for all but FIN and RST packets.
 */
static __always_inline __u32 closing_bits(const struct packet *p, const int client)
{
	__u32 bits = 0;

	if (p->tcp_flags & TCP_FLAG_RST)
		bits |= WEIR_TCP_RST;
	if (p->tcp_flags & TCP_FLAG_FIN)
		bits |= client ? WEIR_TCP_FIN_CLIENT : WEIR_TCP_FIN_BACKEND;
	return bits;
}

/*
 * Whether e's last-seen time is due for a refresh at now. A time ahead of
 * now (another CPU's later reading, or WEIR_SEEN_RECLAIMING) is not.
 */
static __always_inline int seen_due(const struct ct_entry *e, __u64 now)
{
	__u64 seen = e->seen;

	return now > seen && now - seen >= WEIR_SEEN_REFRESH_NS;
}

/*
 * Passes activity on to the other direction's entry of the flow whose
 * rewrite is nat: refreshes its last-seen time to now (0: no refresh) and
 * adds closing bits. Out of line: it runs once a second per flow or on a
 * FIN or RST, and its key would otherwise sit in the short path's frame.
 */
static __noinline void touch_peer(const struct packet *p, const struct nat *nat, __u64 now, __u32 bits,
				  const int client)
{
	struct ct_entry *peer;
	struct flow pk;

	/* Both ways, the other entry's key is the reply 5-tuple of this one's rewrite. */
	reply_flow(nat, p->flow.proto, p->flow.ip_version, &pk);
	if (client)
		peer = bpf_map_lookup_elem(&weir_v1_rnat, &pk);
	else
		peer = bpf_map_lookup_elem(&weir_v1_ct, &pk);
	if (!peer)
		return;
	if (now && seen_due(peer, now))
		peer->seen = now;
	if (bits)
		__sync_fetch_and_or(&peer->tcp, bits);
}

/*
 * Records that a packet of entry's flow went by: refreshes entry->seen at
 * most once per WEIR_SEEN_REFRESH_NS, so that the common packet only reads
 * it, and adds the packet's closing bits. A client packet (client) also
 * refreshes the reverse entry, which decides when the SNAT port may be
 * reclaimed and would otherwise look idle on a one-way flow; closing bits
 * go to the other direction's entry either way. The other entry costs a
 * lookup, only once a second or on a FIN or RST.
 */
static __always_inline void note_activity(const struct packet *p, struct ct_entry *entry, __u64 now,
					  const int client)
{
	__u32 bits = closing_bits(p, client);
	int due = seen_due(entry, now);

	if (!due && !(bits & ~entry->tcp))
		return;
	if (due)
		entry->seen = now;
	if (bits)
		__sync_fetch_and_or(&entry->tcp, bits);
	if (client || bits)
		touch_peer(p, &entry->nat, due && client ? now : 0, bits, client);
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

/*
 * Checks a client packet's conntrack entry ct (NULL: none) on the full path
 * and copies what stays valid into e: the rewrite, and for an established
 * flow also the backend's counter slot and the checksum deltas.
 */
static __always_inline enum ct_state ct_check(const struct packet *p, __u32 service_id, const struct ct_entry *ct,
					      struct ct_entry *e)
{
	struct live_value *live;

	if (!ct || ct->nat.service_id != service_id)
		return CT_MISS;
	__builtin_memcpy(&e->nat, &ct->nat, sizeof(e->nat));
	live = live_backend(service_id, e->nat.dst, e->nat.dport, p->flow.ip_version);
	if (!live)
		return CT_MISS;
	e->slot = live->slot;
	if (!reverse_is_ours(p, &e->nat))
		return CT_SNAT_LOST;
	e->csum_addrs = ct->csum_addrs;
	e->csum_ports = ct->csum_ports;
	return CT_ESTABLISHED;
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

/* Whether a flow that has seen closing bits tcp is over: an RST, or a FIN each way. */
static __always_inline int tcp_closed(__u32 tcp)
{
	const __u32 both_fins = WEIR_TCP_FIN_CLIENT | WEIR_TCP_FIN_BACKEND;

	return (tcp & WEIR_TCP_RST) || (tcp & both_fins) == both_fins;
}

/*
 * Whether the SNAT port held by reverse entry rev, last seen at seen, may
 * go to another flow at now: its flow has been idle for longer than the
 * timeout of its protocol and state.
 */
static __always_inline int reclaimable(const struct ct_entry *rev, __u64 seen, __u8 proto, __u64 now)
{
	__u64 timeout = weir_tcp_idle_timeout_ns;

	if (proto == IPPROTO_UDP)
		timeout = weir_udp_idle_timeout_ns;
	else if (tcp_closed(rev->tcp))
		timeout = weir_closed_timeout_ns;
	return now > seen && now - seen > timeout;
}

/*
 * Removes the conntrack entry of the flow that held a reclaimed SNAT port,
 * so that a late packet of it (within the flow cache TTL it would not
 * recheck the reverse entry) starts a new flow instead of sending on the
 * new owner's 5-tuple. ck is that flow's conntrack key, rk the reclaimed
 * port's reverse key; the entry is removed only if it still names the port.
 */
static __always_inline void forget_owner(const struct flow *rk, const struct flow *ck, __u32 service_id)
{
	struct ct_entry *ct = bpf_map_lookup_elem(&weir_v1_ct, ck);

	if (ct && ct->nat.service_id == service_id && ct->nat.sport == rk->dport && ct->nat.dport == rk->sport &&
	    addr_equal(ct->nat.src, rk->dst) && addr_equal(ct->nat.dst, rk->src))
		bpf_map_delete_elem(&weir_v1_ct, ck);
}

/*
 * Takes over the SNAT port of reverse entry cur (at key rk) for the flow
 * whose reverse entry is rv, if cur's flow has been idle long enough.
 * Exactly one CPU wins a port: the compare-and-swap on cur->seen from the
 * idle time it judged to WEIR_SEEN_RECLAIMING fails for every other (and
 * for the old flow, should a packet of it refresh seen meanwhile); the
 * losers go on probing. Returns 0 when the port is rv's.
 */
static __always_inline int reclaim_port(const struct flow *rk, const struct ct_entry *rv, struct ct_entry *cur)
{
	__u64 seen = *(volatile __u64 *)&cur->seen;
	__u32 service_id = cur->nat.service_id;
	struct flow ck;

	if (!reclaimable(cur, seen, rk->proto, rv->seen))
		return -1;
	/* The old owner's conntrack key, read while cur is still its entry. */
	reply_flow(&cur->nat, rk->proto, rk->ip_version, &ck);
	if (__sync_val_compare_and_swap(&cur->seen, seen, WEIR_SEEN_RECLAIMING) != seen)
		return -1;
	if (bpf_map_update_elem(&weir_v1_rnat, rk, rv, BPF_ANY) < 0) {
		cur->seen = seen;
		return -1;
	}
	forget_owner(rk, &ck, service_id);
	return 0;
}

/*
 * Claims a source port on fwd->nat.src towards fwd->nat.dst:dport by
 * inserting the reverse entry with BPF_NOEXIST, so two CPUs can never share
 * a port; sets fwd->nat.sport on success.
 *
 * Probe i tries port first + fmix32(start + i * golden) % count, in the
 * service's range [first, first + count): probes are independent, so with
 * a fraction a of the ports taken all of them fail with probability
 * a^PROBES, where linear probing would run into clusters. The
 * sequence depends on the flow only: after its conntrack entry is lost the
 * same flow lands on the same port again, and an entry that already belongs
 * to this flow is taken over. A port whose flow has closed or gone idle is
 * reclaimed (reclaim_port). fwd->seen and fwd->tcp must be set: the reverse
 * entry starts with the same liveness.
 *
 * Out of line: only new flows come here, and its locals would otherwise
 * share one stack frame with everything else.
 */
static __noinline int alloc_snat_port(const struct packet *p, struct ct_entry *fwd, __u32 first, __u32 count)
{
	__u32 start = flow_hash(&p->flow, WEIR_HASH_SEED_SNAT);
	struct ct_entry *rv;
	struct flow rk;
	__u32 zero = 0;

	rv = bpf_map_lookup_elem(&weir_scratch, &zero);
	if (!rv || count == 0)
		return -1;
	__builtin_memset(rv, 0, sizeof(*rv));
	reply_flow(&fwd->nat, p->flow.proto, p->flow.ip_version, &rk);
	reverse_nat(&p->flow, fwd->nat.service_id, &rv->nat);
	rv->generation = fwd->generation;
	rv->slot = fwd->slot;
	rv->seen = fwd->seen;
	rv->tcp = fwd->tcp;
	/* The reply's address delta does not depend on the port. */
	csum_deltas(&rk, rv);
	for (__u32 i = 0; i < WEIR_SNAT_PROBES; i++) {
		__u16 port = first + fmix32(start + i * WEIR_SNAT_PROBE_STEP) % count;
		struct ct_entry *cur;

		rk.dport = port;
		rv->csum_ports = csum_delta_ports(rk.sport, port, rv->nat.sport, rv->nat.dport);
		if (bpf_map_update_elem(&weir_v1_rnat, &rk, rv, BPF_NOEXIST) == 0) {
			fwd->nat.sport = port;
			return 0;
		}
		cur = bpf_map_lookup_elem(&weir_v1_rnat, &rk);
		if (!cur)
			continue;
		if ((cur->seen != WEIR_SEEN_RECLAIMING && nat_equal(&cur->nat, &rv->nat)) ||
		    reclaim_port(&rk, rv, cur) == 0) {
			fwd->nat.sport = port;
			return 0;
		}
	}
	return -1;
}

/* Writes the new addresses and, for IPv4, fixes the header checksum. */
static __always_inline int rewrite_addrs(struct hook_ctx *ctx, const struct packet *p, const struct ct_entry *e)
{
	if (p->flow.ip_version == WEIR_IPV4) {
		struct iphdr *ip = packet_at(ctx, ETH_HLEN, sizeof(*ip));

		if (!ip)
			return -1;
		__builtin_memcpy(&ip->saddr, e->nat.src, 4);
		__builtin_memcpy(&ip->daddr, e->nat.dst, 4);
		ip->check = csum_apply(ip->check, e->csum_addrs);
	} else {
		struct ipv6hdr *ip6 = packet_at(ctx, ETH_HLEN, sizeof(*ip6));

		if (!ip6)
			return -1;
		__builtin_memcpy(&ip6->saddr, e->nat.src, 16);
		__builtin_memcpy(&ip6->daddr, e->nat.dst, 16);
	}
	return 0;
}

static __always_inline int rewrite_ports(struct hook_ctx *ctx, const struct packet *p, const struct ct_entry *e)
{
	__be16 *ports = packet_at(ctx, p->l4_off, 4);

	if (!ports)
		return -1;
	ports[0] = bpf_htons(e->nat.sport);
	ports[1] = bpf_htons(e->nat.dport);
	return 0;
}

static __always_inline int write_macs(struct hook_ctx *ctx, const struct fwd_cache *fwd)
{
	__u8 *eth = packet_at(ctx, 0, 2 * ETH_ALEN);

	if (!eth)
		return -1;
	__builtin_memcpy(eth, fwd->dmac, ETH_ALEN);
	__builtin_memcpy(eth + ETH_ALEN, fwd->smac, ETH_ALEN);
	return 0;
}

/*
 * Folds e's precomputed deltas into the L4 checksum: the addresses as part
 * of the pseudo header, the ports as plain data. Two calls, because tc's
 * helper treats them differently for CHECKSUM_PARTIAL packets (whose field
 * holds only the pseudo-header sum) and CHECKSUM_COMPLETE ones (whose
 * skb->csum must follow the pseudo header only); see hook_l4_csum_add.
 */
static __always_inline int fix_l4_csum(struct hook_ctx *ctx, const struct packet *p, const struct ct_entry *e)
{
	int udp = p->flow.proto == IPPROTO_UDP;
	long err;

	err = hook_l4_csum_add(ctx, p->csum_off, e->csum_addrs, 1, udp, p->flow.ip_version == WEIR_IPV6);
	if (err < 0)
		return err;
	return hook_l4_csum_add(ctx, p->csum_off, e->csum_ports, 0, udp, 0);
}

/*
 * Rewrites the packet's 5-tuple to e->nat (and its MAC addresses, when
 * macs) with e's checksum deltas. Stores go straight into the packet; only
 * the L4 checksum needs the helper, which alone knows how the skb carries
 * its checksum.
 */
static __always_inline int rewrite(struct hook_ctx *ctx, const struct packet *p, const struct ct_entry *e,
				   int macs)
{
	if (rewrite_addrs(ctx, p, e) < 0 || rewrite_ports(ctx, p, e) < 0)
		return -1;
	if (macs && write_macs(ctx, &e->fwd) < 0)
		return -1;
	return fix_l4_csum(ctx, p, e);
}

/* The FIB lookup of a packet of ip_len bytes rewritten to `to`. */
static __always_inline void fib_params(struct hook_ctx *ctx, const struct packet *p, const struct nat *to,
				       __u16 ip_len, struct bpf_fib_lookup *fib)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->l4_protocol = p->flow.proto;
	fib->sport = bpf_htons(to->sport);
	fib->dport = bpf_htons(to->dport);
	fib->tot_len = ip_len;
	fib->ifindex = hook_ifindex(ctx);
	if (p->flow.ip_version == WEIR_IPV4) {
		fib->family = AF_INET;
		__builtin_memcpy(&fib->ipv4_src, to->src, 4);
		__builtin_memcpy(&fib->ipv4_dst, to->dst, 4);
	} else {
		fib->family = AF_INET6;
		__builtin_memcpy(fib->ipv6_src, to->src, 16);
		__builtin_memcpy(fib->ipv6_dst, to->dst, 16);
	}
}

/*
 * Asks the FIB where the packet rewritten to `to` goes and fills the cache
 * c with the answer; returns the enum fwd_action to take, FWD_TOO_BIG when
 * the MTU does not take the packet (translate passes it to the kernel), or
 * FWD_NEIGH with nh and c->ifindex set. Only cacheable answers leave c->action set: the
 * next hop is resolved (its MAC addresses are final), or the kernel must
 * route the packet for a reason other than its length.
 *
 * The FIB checks the MTU for the length it is given. Asking for at least
 * WEIR_FIB_PROBE_LEN bytes lets a flow whose first packet is a small SYN
 * send full-size packets from the cache too; where the MTU is smaller, a
 * second lookup with the packet's own length decides.
 *
 * Out of line, like alloc_snat_port: the lookup parameters are large.
 */
static __noinline __u32 fib_decide(struct hook_ctx *ctx, const struct packet *p, const struct nat *to,
				   struct fwd_cache *c, struct bpf_redir_neigh *nh)
{
	__u16 len = p->ip_len > WEIR_FIB_PROBE_LEN ? p->ip_len : WEIR_FIB_PROBE_LEN;
	struct bpf_fib_lookup fib;
	long rc;

	__builtin_memset(c, 0, sizeof(*c));
	fib_params(ctx, p, to, len, &fib);
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED && len > p->ip_len) {
		len = p->ip_len;
		fib_params(ctx, p, to, len, &fib);
		rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	}
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		c->action = FWD_REDIRECT;
		c->ifindex = fib.ifindex;
		c->max_len = len;
		__builtin_memcpy(c->dmac, fib.dmac, ETH_ALEN);
		__builtin_memcpy(c->smac, fib.smac, ETH_ALEN);
		c->stamp = bpf_ktime_get_coarse_ns();
		return FWD_REDIRECT;
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		/* The lookup left the next hop (gateway or destination) in *_dst. */
		nh->nh_family = fib.family;
		__builtin_memcpy(nh->ipv6_nh, fib.ipv6_dst, sizeof(nh->ipv6_nh));
		c->ifindex = fib.ifindex;
		return FWD_NEIGH;
	}
	if (rc != BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		/* Local, unreachable, forwarding disabled, ...: the kernel decides. */
		c->action = FWD_KERNEL;
		c->max_len = 0xffff;
		c->stamp = bpf_ktime_get_coarse_ns();
		return FWD_KERNEL;
	}
	return FWD_TOO_BIG;
}

/* Whether c holds a decision for a packet of ip_len bytes at time now. */
static __always_inline int fwd_fresh(const struct fwd_cache *c, __u16 ip_len, __u64 now)
{
	return c->action != FWD_NONE && now - c->stamp < weir_flow_cache_ttl_ns && ip_len <= c->max_len;
}

/*
 * Stores what the full path learnt into the entry in the map, in place: an
 * established flow's rewrite and deltas do not change, and rewriting the
 * whole value would take a new LRU node (possibly evicting another flow)
 * every TTL. The action is withdrawn first and set last, so that a reader
 * on another CPU starting meanwhile takes the full path too; one that read
 * the action just before may mix old and new fields for that one packet,
 * the price of not locking.
 */
static __always_inline void refresh(struct ct_entry *entry, const struct ct_entry *e)
{
	entry->fwd.action = FWD_NONE;
	asm volatile("" ::: "memory");
	entry->generation = e->generation;
	entry->slot = e->slot;
	entry->fwd.stamp = e->fwd.stamp;
	entry->fwd.ifindex = e->fwd.ifindex;
	entry->fwd.max_len = e->fwd.max_len;
	__builtin_memcpy(entry->fwd.dmac, e->fwd.dmac, ETH_ALEN);
	__builtin_memcpy(entry->fwd.smac, e->fwd.smac, ETH_ALEN);
	asm volatile("" ::: "memory");
	entry->fwd.action = e->fwd.action;
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
		return HOOK_DROP;
	svc_stats->drops[reason]++;
	if (be_stats)
		be_stats->drops[reason]++;
	return HOOK_DROP;
}

/*
 * Counts a packet of entry e that was rewritten for the way out (err: what
 * the rewrite returned; a failed one is dropped and counted) and sends it
 * on as action says (FWD_NEIGH: through nh, which only the full path has).
 * NAT's translate and DSR's dsr_send both end here.
 */
static __always_inline int send_rewritten(struct hook_ctx *ctx, const struct ct_entry *e, int err, __u32 action,
					  const struct bpf_redir_neigh *nh, int new_flow)
{
	struct counters *svc_stats, *be_stats = NULL;
	__u32 service_id = e->nat.service_id;

	svc_stats = bpf_map_lookup_elem(&weir_v1_svcstat, &service_id);
	if (e->slot != WEIR_NO_SLOT)
		be_stats = backend_counters(service_id, e->slot);
	if (err < 0) {
		if (svc_stats)
			return drop(svc_stats, be_stats, DROP_REWRITE_FAILED);
		return HOOK_DROP;
	}
	if (svc_stats)
		count(svc_stats, hook_len(ctx), new_flow);
	if (be_stats)
		count(be_stats, hook_len(ctx), new_flow);
	if (action == FWD_REDIRECT)
		return hook_redirect(ctx, e->fwd.ifindex);
	if (action == FWD_NEIGH && nh)
		return hook_redirect_neigh(ctx, e->fwd.ifindex, nh);
	return HOOK_PASS;
}

/*
 * Translates a packet whose entry e is settled and sends it on as action
 * says. Both paths, both directions end here, so that a cached decision
 * rewrites exactly as a fresh one.
 */
static __always_inline int translate(struct hook_ctx *ctx, const struct packet *p, const struct ct_entry *e,
				     __u32 action, const struct bpf_redir_neigh *nh, int new_flow)
{
	return send_rewritten(ctx, e, rewrite(ctx, p, e, action == FWD_REDIRECT), action, nh, new_flow);
}

#include "dsr.h"

/*
 * The short path: an entry checked in its service's live generation, with a
 * fresh forwarding decision that covers this packet's length. One array
 * lookup and the counters besides the entry itself; NOT_HANDLED otherwise.
 * client says which way the packet goes (entry is in weir_v1_ct).
 */
static __always_inline int try_established(struct hook_ctx *ctx, const struct packet *p,
					   struct ct_entry *entry, const int client)
{
	__u32 service_id = entry->nat.service_id;
	struct active_generation *active;
	__u64 now;

	if (entry->forwarding != WEIR_FWD_NAT)
		return dsr_established(ctx, p, entry);
	now = bpf_ktime_get_coarse_ns();
	if (!fwd_fresh(&entry->fwd, p->ip_len, now))
		return NOT_HANDLED;
	active = bpf_map_lookup_elem(&weir_v1_active, &service_id);
	if (!active || active->generation != entry->generation)
		return NOT_HANDLED;
	note_activity(p, entry, now, client);
	return translate(ctx, p, entry, entry->fwd.action, NULL, 0);
}

/*
 * A client packet to a VIP on the full path: choose or recheck the backend,
 * look the route up, store all of it in conntrack, translate, forward. ct is
 * the packet's conntrack entry, NULL if none.
 */
static __always_inline int handle_vip(struct hook_ctx *ctx, struct packet *p, __u32 service_id,
				      struct ct_entry *ct)
{
	struct bpf_redir_neigh nh = {};
	struct active_generation *active;
	struct counters *svc_stats;
	struct ct_entry e = {};
	struct service *svc;
	struct backend be;
	enum ct_state state;
	__u32 half_index, action;
	int reason;

	active = bpf_map_lookup_elem(&weir_v1_active, &service_id);
	if (!active || active->generation == 0)
		return HOOK_PASS;
	e.generation = active->generation;
	half_index = service_id * 2 + (e.generation & 1);
	svc = bpf_map_lookup_elem(&weir_v1_svc, &half_index);
	svc_stats = bpf_map_lookup_elem(&weir_v1_svcstat, &service_id);
	if (!svc || !svc_stats)
		return HOOK_PASS;
	if (svc->forwarding != WEIR_FWD_NAT)
		return dsr_handle_vip(ctx, p, service_id, ct);

	state = ct_check(p, service_id, ct, &e);
	e.seen = bpf_ktime_get_coarse_ns();
	e.tcp = closing_bits(p, 1);
	if (state == CT_MISS) {
		reason = pick_backend(p, half_index, svc, &be);
		if (reason >= 0)
			return drop(svc_stats, NULL, reason);
		e.slot = be.slot;
		__builtin_memcpy(e.nat.dst, be.addr, 16);
		e.nat.dport = be.port;
		e.nat.service_id = service_id;
	}
	if (state != CT_ESTABLISHED) {
		__builtin_memcpy(e.nat.src, svc->snat, 16);
		if (alloc_snat_port(p, &e, svc->snat_ports.first, svc->snat_ports.count) < 0)
			return drop(svc_stats, backend_counters(service_id, e.slot), DROP_SNAT_EXHAUSTED);
		csum_deltas(&p->flow, &e);
	}
	action = fib_decide(ctx, p, &e.nat, &e.fwd, &nh);
	/*
	 * XDP, next hop unresolved: nothing stored but a new flow's reverse
	 * entry, which the same flow takes over; the tc program behind
	 * decides again and counts the packet.
	 */
	if (hook_defers(action))
		return HOOK_PASS;
	if (state == CT_ESTABLISHED) {
		refresh(ct, &e);
		note_activity(p, ct, e.seen, 1);
	} else {
		bpf_map_update_elem(&weir_v1_ct, &p->flow, &e, BPF_ANY);
	}
	return translate(ctx, p, &e, action, &nh, state != CT_ESTABLISHED);
}

/* The full path of a backend's reply: recheck the backend's counter slot and the route. */
static __always_inline int reply_full_path(struct hook_ctx *ctx, struct packet *p, struct ct_entry *rev)
{
	struct bpf_redir_neigh nh = {};
	struct active_generation *active;
	struct live_value *live;
	struct ct_entry e;
	__u32 service_id, action;

	__builtin_memcpy(&e, rev, sizeof(e));
	service_id = e.nat.service_id;
	active = bpf_map_lookup_elem(&weir_v1_active, &service_id);
	e.generation = active ? active->generation : 0;
	live = live_backend(service_id, p->flow.src, p->flow.sport, p->flow.ip_version);
	e.slot = live ? live->slot : WEIR_NO_SLOT;
	action = fib_decide(ctx, p, &e.nat, &e.fwd, &nh);
	if (hook_defers(action))
		return HOOK_PASS;
	refresh(rev, &e);
	note_activity(p, rev, bpf_ktime_get_coarse_ns(), 0);
	return translate(ctx, p, &e, action, &nh, 0);
}

/* A backend's reply to a SNAT address and port we handed out: translate it back. */
static __always_inline int handle_reply(struct hook_ctx *ctx, struct packet *p, struct ct_entry *rev)
{
	int ret = try_established(ctx, p, rev, 0);

	if (ret != NOT_HANDLED)
		return ret;
	return reply_full_path(ctx, p, rev);
}

/*
 * A GSO packet (a stream's segments aggregated by GRO, or by the sender
 * on a veth) is longer than the MTU and leaves as segments of gso_size
 * bytes of payload each: what must fit the route's MTU, and be cached as
 * fitting, is one segment, not the aggregate.
 */
static __always_inline void segment_len(struct hook_ctx *ctx, struct packet *p)
{
	__u32 l4_hdr = 8; /* UDP */
	__u8 doff;

	if (!hook_gso_size(ctx))
		return;
	if (p->flow.proto == IPPROTO_TCP) {
		if (hook_load_bytes(ctx, p->l4_off + 12, &doff, 1) < 0)
			return;
		l4_hdr = (doff >> 4) * 4;
	}
	p->ip_len = p->l4_off - ETH_HLEN + l4_hdr + hook_gso_size(ctx);
}

/*
 * ICMP errors about flows: parsing (shared by every way of forwarding),
 * DSR's forwarding and MTU answer, then NAT's translation.
 */
#include "icmp.h"
#include "icmp_nat.h"
#include "icmp_dsr.h"

/*
 * The program, for either hook: parse, then ICMP errors, replies, the short
 * path, the full path.
 */
static __always_inline int weir_main(struct hook_ctx *ctx)
{
	struct vip_key vk = {};
	struct vip_value *vip;
	struct ct_entry *entry;
	struct packet p;
	int ret;

	ret = parse_packet(ctx, &p);
	if (ret == PARSE_ICMP) {
		/* Called one after the other, so that their frames do not add up. */
		ret = icmp_nat(ctx, &p);
		return ret != NOT_HANDLED ? ret : icmp_dsr_forward(ctx, &p);
	}
	if (ret != 0)
		return HOOK_PASS;
	segment_len(ctx, &p);

	/* Only a packet to a port we hand out can be a reply. */
	if (is_reply_port(p.flow.dport)) {
		entry = bpf_map_lookup_elem(&weir_v1_rnat, &p.flow);
		if (entry)
			return handle_reply(ctx, &p, entry);
	}
	entry = bpf_map_lookup_elem(&weir_v1_ct, &p.flow);
	if (entry) {
		ret = try_established(ctx, &p, entry, 1);
		if (ret != NOT_HANDLED)
			return ret;
	}

	__builtin_memcpy(vk.addr, p.flow.dst, 16);
	vk.port = p.flow.dport;
	vk.proto = p.flow.proto;
	vk.ip_version = p.flow.ip_version;
	vip = bpf_map_lookup_elem(&weir_v1_vips, &vk);
	if (vip)
		return handle_vip(ctx, &p, vip->service_id, entry);
	return HOOK_PASS;
}

#ifdef WEIR_XDP
SEC("xdp")
int weir_xdp(struct xdp_md *ctx)
{
	return weir_main(ctx);
}
#else
SEC("tc")
int weir_ingress(struct __sk_buff *skb)
{
	return weir_main(skb);
}
#endif
