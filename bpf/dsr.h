/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * Direct server return: the client's packet goes to the backend unchanged,
 * inside an outer header from the service's source address (service.snat)
 * to the backend, and the backend's kernel decapsulates it, holds the VIP
 * on its loopback and answers the client directly, so there is no SNAT
 * port and no reply path here. Two encapsulations, both of the VIP's
 * family:
 *
 * - IP in IP (WEIR_FWD_DSR_IPIP): IPv4 in IPv4 (protocol 4) or IPv6 in
 *   IPv6 (next header 41), for an ipip or ip6tnl device.
 *
 * - GUE (WEIR_FWD_DSR_GUE): an outer IP header and a UDP header, to the
 *   service's gue_port, whose payload is the client's packet from its IP
 *   header on. That is GUE version 1 ("direct IP", no GUE header): the
 *   first two bits of an IPv4 or IPv6 header are 01, which is the version
 *   field, and Linux's fou (gue_udp_recv) hands such a payload to IPIP or
 *   IPv6 by the inner header's version, for either outer family. It crosses
 *   routers that balance UDP by ports: the source port is a hash of the
 *   client's flow (stable per flow, spread over flows), in 49152-65535
 *   as RFC 8086 3.2.1 asks of GRE-in-UDP. The UDP checksum is zero, for
 *   IPv6 too: RFC 6935 allows it for tunnels, the inner packet carries its
 *   own, and a fou socket receives zero checksums (fou never asks
 *   udp_sock_create for use_udp6_rx_checksums, so its no_check6_rx is
 *   set). It could not be computed for a GSO packet anyway: the
 *   segmentation of a UDP tunnel that bpf_skb_adjust_room marks
 *   (SKB_GSO_UDP_TUNNEL, without _CSUM) copies the header's checksum into
 *   every segment.
 *
 * Not a standalone header: weir.c includes it after the helpers it shares
 * with NAT (parsing, backend choice, FIB decision, counters) and before the
 * two places the forwarding mode branches, try_established and handle_vip.
 */
#ifndef WEIR_DSR_H
#define WEIR_DSR_H

#define IP_DF 0x4000
#define IPIP_TTL 64
#define UDP_HLEN 8
/* GUE source ports: the dynamic range, 49152-65535, from 14 bits of a hash. */
#define GUE_SPORT_BASE 0xc000
#define GUE_SPORT_MASK 0x3fff

/* A UDP header (linux/udp.h's, which nothing else here needs). */
struct udp_hdr {
	__be16 source;
	__be16 dest;
	__be16 len;
	__be16 check;
};

/* Bytes the outer headers of forwarding (WEIR_FWD_DSR_*) add to a packet of ip_version. */
static __always_inline __u32 dsr_overhead(__u8 ip_version, __u8 forwarding)
{
	__u32 ip = ip_version == WEIR_IPV4 ? sizeof(struct iphdr) : IPV6_HDR_LEN;

	return forwarding == WEIR_FWD_DSR_GUE ? ip + UDP_HLEN : ip;
}

/*
 * The length of the IP packets that leave for the backend. A GSO packet
 * (tc only) leaves as segments: bpf_skb_adjust_room lowers gso_size by
 * the outer headers, so each encapsulated segment is as long as the segment was
 * (p->ip_len, see segment_len). Anything else grows by the outer headers.
 */
static __always_inline __u32 dsr_outer_len(struct hook_ctx *ctx, const struct packet *p, __u8 forwarding)
{
	if (hook_gso_size(ctx))
		return p->ip_len;
	return p->ip_len + dsr_overhead(p->flow.ip_version, forwarding);
}

/* The outer header's protocol (IPv4) or next header (IPv6) for entry e. */
static __always_inline __u8 dsr_outer_proto(const struct ct_entry *e, __u8 ip_version)
{
	if (e->forwarding == WEIR_FWD_DSR_GUE)
		return IPPROTO_UDP;
	return ip_version == WEIR_IPV4 ? IPPROTO_IPIP : IPPROTO_IPV6;
}

/*
 * Sets e's encapsulation from its service's, for packet p of the flow:
 * with GUE, the destination port and the source port hashed from the
 * client's flow, so that every packet of a flow (and the ICMP errors
 * about it, icmp_dsr.h) takes the same path through routers that spread
 * UDP by ports. Out of line: inlined, the hash's temporaries would grow
 * the frames of dsr_handle_vip and icmp_dsr_forward, which lie under
 * fib_decide's.
 */
static __noinline void dsr_set_encap(struct ct_entry *e, const struct service *svc, const struct packet *p)
{
	e->forwarding = svc->forwarding;
	e->gue_port = 0;
	e->nat.sport = 0;
	if (svc->forwarding != WEIR_FWD_DSR_GUE)
		return;
	e->gue_port = svc->gue_port;
	e->nat.sport = GUE_SPORT_BASE | (flow_hash(&p->flow, WEIR_HASH_SEED_GUE) & GUE_SPORT_MASK);
}

/*
 * Whether conntrack entry ct may keep its backend for a packet of DSR
 * service svc: it is the service's, encapsulated as the service now says
 * from the source address it now has (so that a changed service rewrites
 * every entry in full).
 */
static __always_inline int dsr_entry_current(const struct ct_entry *ct, __u32 service_id, const struct service *svc)
{
	return ct->nat.service_id == service_id && ct->forwarding == svc->forwarding &&
	       ct->gue_port == svc->gue_port && addr_equal(ct->nat.src, svc->snat);
}

/* The outer UDP header of GUE entry e around an inner IP packet of inner_len bytes. */
static __always_inline void gue_udp_header(struct udp_hdr *udp, const struct ct_entry *e, __u32 inner_len)
{
	udp->source = bpf_htons(e->nat.sport);
	udp->dest = bpf_htons(e->gue_port);
	udp->len = bpf_htons(inner_len + UDP_HLEN);
	udp->check = 0; /* see the top of this file */
}

/* The IPv4 header checksum of a 20-byte header whose check field is zero. */
static __always_inline __u16 ipv4_header_csum(const struct iphdr *ip)
{
	const __u32 *w = (const __u32 *)ip;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*ip) / 4); i++)
		sum = csum_add(sum, w[i]);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* The outer headers of either encapsulation, as they lie in the packet. */
struct outer4 {
	struct iphdr ip;
	struct udp_hdr udp; /* GUE only */
};

struct outer6 {
	struct ipv6hdr ip;
	struct udp_hdr udp; /* GUE only */
};

/*
 * Makes room for outer headers of len bytes (UDP among them with GUE, so
 * that a tc GSO packet is segmented as a UDP tunnel) and writes them from
 * o; tc keeps a CHECKSUM_COMPLETE skb->csum right (hook.h).
 */
static __always_inline int push_outer(struct hook_ctx *ctx, const void *o, __u32 len, __u64 l3_flag, int gue)
{
	if (gue) {
		if (hook_insert_room(ctx, len, l3_flag | BPF_F_ADJ_ROOM_ENCAP_L4_UDP) < 0)
			return -1;
		return hook_store_bytes(ctx, ETH_HLEN, o, len);
	}
	if (hook_insert_room(ctx, len, l3_flag) < 0)
		return -1;
	return hook_store_bytes(ctx, ETH_HLEN, o, len);
}

/*
 * Puts an outer IPv4 header (and with GUE a UDP header) in front of the
 * packet's (inner) one: DS field and DF copied from the inner header, TTL
 * 64, from nat.src to nat.dst. A packet the sender lets be fragmented gets
 * a random identification, one with DF none (RFC 6864).
 */
static __always_inline int encap_ipv4(struct hook_ctx *ctx, const struct ct_entry *e)
{
	struct iphdr *inner = packet_at(ctx, ETH_HLEN, sizeof(*inner));
	int gue = e->forwarding == WEIR_FWD_DSR_GUE;
	struct outer4 o = {};
	__u32 len = gue ? sizeof(o) : sizeof(o.ip), inner_len;

	if (!inner)
		return -1;
	inner_len = bpf_ntohs(inner->tot_len);
	o.ip.version = 4;
	o.ip.ihl = sizeof(o.ip) / 4;
	o.ip.tos = inner->tos;
	o.ip.tot_len = bpf_htons(inner_len + len);
	o.ip.frag_off = inner->frag_off & bpf_htons(IP_DF);
	if (!o.ip.frag_off)
		o.ip.id = (__u16)bpf_get_prandom_u32();
	o.ip.ttl = IPIP_TTL;
	o.ip.protocol = dsr_outer_proto(e, WEIR_IPV4);
	__builtin_memcpy(&o.ip.saddr, e->nat.src, 4);
	__builtin_memcpy(&o.ip.daddr, e->nat.dst, 4);
	o.ip.check = ipv4_header_csum(&o.ip);
	if (gue)
		gue_udp_header(&o.udp, e, inner_len);
	return push_outer(ctx, &o, len, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4, gue);
}

/*
 * Puts an outer IPv6 header (and with GUE a UDP header) in front of the
 * packet's: traffic class and flow label copied from the inner header (so
 * that routers spread flows as before), hop limit 64, next header 41 or
 * UDP, from nat.src to nat.dst.
 */
static __always_inline int encap_ipv6(struct hook_ctx *ctx, const struct ct_entry *e)
{
	struct ipv6hdr *inner = packet_at(ctx, ETH_HLEN, sizeof(*inner));
	int gue = e->forwarding == WEIR_FWD_DSR_GUE;
	struct outer6 o;
	__u32 len = gue ? sizeof(o) : sizeof(o.ip), inner_len;

	if (!inner)
		return -1;
	inner_len = IPV6_HDR_LEN + bpf_ntohs(inner->payload_len);
	__builtin_memcpy(&o.ip, inner, 4); /* version, traffic class, flow label */
	o.ip.payload_len = bpf_htons(inner_len + len - IPV6_HDR_LEN);
	o.ip.nexthdr = dsr_outer_proto(e, WEIR_IPV6);
	o.ip.hop_limit = IPIP_TTL;
	__builtin_memcpy(&o.ip.saddr, e->nat.src, 16);
	__builtin_memcpy(&o.ip.daddr, e->nat.dst, 16);
	if (gue)
		gue_udp_header(&o.udp, e, inner_len);
	return push_outer(ctx, &o, len, BPF_F_ADJ_ROOM_ENCAP_L3_IPV6, gue);
}

/*
 * Encapsulates the packet for entry e. Out of line: the outer header built
 * on the stack would otherwise sit in the frames of weir_ingress (the short
 * path) and dsr_handle_vip, beside fib_decide's.
 */
static __noinline int dsr_encap(struct hook_ctx *ctx, const struct ct_entry *e, __u8 ip_version)
{
	if (ip_version == WEIR_IPV4)
		return encap_ipv4(ctx, e);
	return encap_ipv6(ctx, e);
}

/*
 * Encapsulates a packet of DSR entry e and sends it on as action says, as
 * translate does for NAT: the same counters (bytes are what leaves, outer
 * header included), MAC addresses and redirect.
 */
static __always_inline int dsr_send(struct hook_ctx *ctx, const struct packet *p, const struct ct_entry *e,
				    __u32 action, const struct bpf_redir_neigh *nh, int new_flow)
{
	int err = dsr_encap(ctx, e, p->flow.ip_version);

	if (err >= 0 && action == FWD_REDIRECT)
		err = write_macs(ctx, &e->fwd);
	return send_rewritten(ctx, e, err, action, nh, new_flow);
}

/*
 * The short path of a DSR flow: like try_established's, except that the
 * cached decision covers the encapsulated length and there is no reverse
 * entry to keep alive. Out of line, so that NAT's short path, which it
 * branches from, keeps its code as compact as before.
 */
static __noinline int dsr_established(struct hook_ctx *ctx, const struct packet *p, const struct ct_entry *entry)
{
	__u32 service_id = entry->nat.service_id;
	struct active_generation *active;
	__u64 now = bpf_ktime_get_coarse_ns();
	__u32 len = dsr_outer_len(ctx, p, entry->forwarding);

	/* Compared here as 32 bits: an outer length past 0xffff never fits. */
	if (len > entry->fwd.max_len || !fwd_fresh(&entry->fwd, 0, now))
		return NOT_HANDLED;
	active = bpf_map_lookup_elem(&weir_v1_active, &service_id);
	if (!active || active->generation != entry->generation)
		return NOT_HANDLED;
	return dsr_send(ctx, p, entry, entry->fwd.action, NULL, 0);
}

/*
 * Asks the FIB about the encapsulated packet: protocol IPIP or IPv6 and no
 * ports, or UDP and GUE's ports (for a multipath route's hash), the outer
 * length. FWD_TOO_BIG when the route's MTU does not take
 * it; the cached max_len is then an outer length, as dsr_established
 * compares. p and e are lent to fib_decide as the outer packet and restored
 * after: copies would not fit the stack.
 */
static __always_inline __u32 dsr_fib(struct hook_ctx *ctx, struct packet *p, struct ct_entry *e,
				     struct bpf_redir_neigh *nh)
{
	__u16 ip_len = p->ip_len, dport = e->nat.dport;
	__u32 outer_len = dsr_outer_len(ctx, p, e->forwarding);
	__u8 proto = p->flow.proto;
	__u32 action;

	if (outer_len > 0xffff)
		return FWD_TOO_BIG; /* no IP packet is that long */
	p->flow.proto = dsr_outer_proto(e, p->flow.ip_version);
	p->ip_len = outer_len;
	e->nat.dport = e->gue_port; /* nat.sport is GUE's source port, or 0 */
	action = fib_decide(ctx, p, &e->nat, &e->fwd, nh);
	p->flow.proto = proto;
	p->ip_len = ip_len;
	e->nat.dport = dport;
	return action;
}

/*
 * Chooses a new flow's backend through the Maglev table into e (whose
 * nat.service_id is set); returns a drop reason or -1. Out of line, so that
 * the backend's copy is not on the stack while fib_decide runs.
 */
static __noinline int dsr_choose(const struct packet *p, __u32 half_index, const struct service *svc,
				 struct ct_entry *e)
{
	struct backend be;
	int reason;

	reason = pick_backend(p, half_index, svc, &be);
	if (reason >= 0)
		return reason;
	e->slot = be.slot;
	__builtin_memcpy(e->nat.src, svc->snat, 16);
	__builtin_memcpy(e->nat.dst, be.addr, 16);
	e->nat.dport = be.port;
	return -1;
}

/* The MTU answer to a packet too big to encapsulate: icmp_dsr.h. */
static __noinline int dsr_answer_too_big(struct hook_ctx *ctx, const struct packet *p, const struct ct_entry *e);

/*
 * A client packet to a DSR service on the full path. A flow keeps its
 * backend while that is live and the service's source address is the one
 * its entry has (as NAT flows do, through generations: a table change sends
 * every flow here once); otherwise the Maglev table chooses. No port is
 * claimed and no reverse entry made. A packet that would not fit the
 * route's MTU once encapsulated counts as dsr_too_big and is answered with
 * ICMP "fragmentation needed" or "packet too big" (icmp_dsr.h).
 *
 * Out of line, and so looking the service up again (two array lookups, on
 * the full path only): inlined into handle_vip, its locals would share a
 * frame with the NAT path's and pass the verifier's 512 bytes.
 */
static __noinline int dsr_handle_vip(struct hook_ctx *ctx, struct packet *p, __u32 service_id, struct ct_entry *ct)
{
	struct bpf_redir_neigh nh = {};
	struct live_value *live = NULL;
	struct ct_entry *e;
	struct active_generation *active;
	struct counters *svc_stats;
	struct service *svc;
	__u32 action, half_index, zero = 0;
	int reason;

	/* The entry is built in weir_scratch, which NAT only uses for new flows. */
	e = bpf_map_lookup_elem(&weir_scratch, &zero);
	if (!e)
		return HOOK_PASS;
	__builtin_memset(e, 0, sizeof(*e));

	active = bpf_map_lookup_elem(&weir_v1_active, &service_id);
	if (!active || active->generation == 0)
		return HOOK_PASS;
	e->generation = active->generation;
	half_index = service_id * 2 + (e->generation & 1);
	svc = bpf_map_lookup_elem(&weir_v1_svc, &half_index);
	svc_stats = bpf_map_lookup_elem(&weir_v1_svcstat, &service_id);
	if (!svc || !svc_stats)
		return HOOK_PASS;
	if (ct && dsr_entry_current(ct, service_id, svc))
		live = live_backend(service_id, ct->nat.dst, ct->nat.dport, p->flow.ip_version);
	if (live) {
		__builtin_memcpy(&e->nat, &ct->nat, sizeof(e->nat));
		e->slot = live->slot;
	} else {
		e->nat.service_id = service_id;
		reason = dsr_choose(p, half_index, svc, e);
		if (reason >= 0)
			return drop(svc_stats, NULL, reason);
	}
	dsr_set_encap(e, svc, p);
	action = dsr_fib(ctx, p, e, &nh);
	if (hook_defers(action))
		return HOOK_PASS; /* nothing stored: the tc program behind decides again */
	if (action == FWD_TOO_BIG) {
		drop(svc_stats, backend_counters(service_id, e->slot), DROP_DSR_TOO_BIG);
		return dsr_answer_too_big(ctx, p, e);
	}
	if (live)
		refresh(ct, e);
	else
		bpf_map_update_elem(&weir_v1_ct, &p->flow, e, BPF_ANY);
	return dsr_send(ctx, p, e, action, &nh, !live);
}

#endif /* WEIR_DSR_H */
