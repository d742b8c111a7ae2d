/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * Full NAT of ICMP errors (destination unreachable, fragmentation needed
 * included; time exceeded; ICMPv6 packet too big): an error about a packet
 * the balancer translated is translated like that packet's replies, and so
 * reaches the side that owns the flow.
 *
 * Included by weir.c after the NAT helpers it uses (is_reply_port,
 * csum_*, fib_decide, write_macs, count, ...) and icmp.h.
 *
 * The quoted packet was sent by the balancer, so its reverse (icmp_flow) is
 * the key of the entry that translated it, and that entry's rewrite is the
 * error's:
 *
 *   error from the backend's side (the backend, or a router between it and
 *   the balancer) about SNAT:port → backend, arriving at the SNAT address:
 *   entry weir_v1_rnat[backend → SNAT:port], rewrite VIP → client.
 *     outer     X → SNAT                   becomes VIP → client
 *     quoted    SNAT:port → backend:bport  becomes client:cport → VIP:vport
 *
 *   error from the client's side (a router on the client's path) about
 *   VIP:vport → client:cport, a backend's reply as the balancer sent it,
 *   arriving at the VIP: entry weir_v1_ct[client → VIP], rewrite
 *   SNAT → backend.
 *     outer     X → VIP                    becomes SNAT → backend
 *     quoted    VIP:vport → client:cport   becomes backend:bport → SNAT:port
 *
 * The outer source becomes the address the receiver knows the flow by (the
 * VIP for the client, the SNAT address for the backend), whoever sent the
 * error: a router's address would mean nothing to the receiver, and Linux
 * matches an error to its socket by the quoted header alone (the outer
 * source only names the sender in logs and in IP_RECVERR's offender). The
 * MTU of "fragmentation needed" and "packet too big" passes unchanged: full
 * NAT adds no header, so the next hop's MTU is the flow's too.
 *
 * Checksums: the quoted IPv4 header's and the quoted TCP or UDP one (when
 * the error quotes all of it; an IPv4 UDP checksum of zero stays zero) take
 * the entry's deltas, which are the quoted rewrite's too (the same
 * addresses and ports, swapped, and one's complement sums do not depend on
 * order); the ICMP checksum takes everything changed inside the ICMP
 * message, and for ICMPv6 the outer addresses (its pseudo header); the
 * outer IPv4 header takes its addresses. All bytes are stored directly:
 * every change is balanced by a checksum inside the same packet (for
 * ICMPv6, the outer addresses by the ICMPv6 checksum), so the packet's
 * one's complement sum, and with it a CHECKSUM_COMPLETE skb->csum, stays
 * right. ICMP errors are never CHECKSUM_PARTIAL: the kernel sums them in
 * software.
 */
#ifndef WEIR_ICMP_NAT_H
#define WEIR_ICMP_NAT_H

/* What icmp_nat works on, off the stack: the established path's frame leaves it little. */
struct icmp_scratch {
	struct icmp_error ie;
	struct nat nat; /* the entry's rewrite, copied: the entry may change meanwhile */
	struct fwd_cache fwd;
	struct bpf_redir_neigh nh;
};

/* Per CPU, not pinned: it holds nothing between packets. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct icmp_scratch);
} weir_icmp_scratch SEC(".maps");

/* The one's complement delta of a 16-bit field (as it lies in the packet) going from `from` to `to`. */
static __always_inline __u32 csum_delta16(__u16 from, __u16 to)
{
	return csum_add(~(__u32)from, to);
}

/* Rewrites the quoted TCP or UDP header: ports, and its checksum when quoted whole. */
static __always_inline int icmp_nat_quoted_l4(struct hook_ctx *ctx, const struct icmp_error *ie,
					      const struct nat *nat, __u32 csum_l4, __u32 *icmp_delta)
{
	__be16 *ports = packet_at(ctx, ie->quoted_l4_off, 4);
	__u16 *check, old, new;

	if (!ports)
		return -1;
	/* The quoted packet went the other way: its source port is the rewrite's destination. */
	ports[0] = bpf_htons(nat->dport);
	ports[1] = bpf_htons(nat->sport);
	if (!ie->quoted_csum_off)
		return 0;
	check = packet_at(ctx, ie->quoted_csum_off, 2);
	if (!check)
		return -1;
	old = *check;
	if (old == 0 && ie->flow.proto == IPPROTO_UDP)
		return 0; /* no checksum */
	new = csum_apply(old, csum_l4);
	if (new == 0 && ie->flow.proto == IPPROTO_UDP)
		new = 0xffff;
	*check = new;
	*icmp_delta = csum_add(*icmp_delta, csum_delta16(old, new));
	return 0;
}

/* Rewrites the quoted IP header's addresses (and the IPv4 header checksum). */
static __always_inline int icmp_nat_quoted_l3(struct hook_ctx *ctx, const struct icmp_error *ie,
					      const struct nat *nat, __u32 csum_addrs, __u32 *icmp_delta)
{
	if (ie->flow.ip_version == WEIR_IPV4) {
		struct iphdr *ip = packet_at(ctx, ie->quoted_l3_off, sizeof(*ip));
		__u16 old;

		if (!ip)
			return -1;
		__builtin_memcpy(&ip->saddr, nat->dst, 4);
		__builtin_memcpy(&ip->daddr, nat->src, 4);
		old = ip->check;
		ip->check = csum_apply(old, csum_addrs);
		*icmp_delta = csum_add(*icmp_delta, csum_delta16(old, ip->check));
	} else {
		struct ipv6hdr *ip6 = packet_at(ctx, ie->quoted_l3_off, sizeof(*ip6));

		if (!ip6)
			return -1;
		__builtin_memcpy(&ip6->saddr, nat->dst, 16);
		__builtin_memcpy(&ip6->daddr, nat->src, 16);
	}
	*icmp_delta = csum_add(*icmp_delta, csum_addrs);
	return 0;
}

/*
 * Rewrites the outer addresses to nat's (from p's) and then the ICMP
 * checksum by icmp_delta plus, for ICMPv6, the pseudo header's change.
 */
static __always_inline int icmp_nat_outer(struct hook_ctx *ctx, const struct packet *p, const struct icmp_error *ie,
					  const struct nat *nat, __u32 icmp_delta)
{
	__u16 *check;
	__u32 delta;

	if (p->flow.ip_version == WEIR_IPV4) {
		struct iphdr *ip;
		__u32 from[2], to[2];

		__builtin_memcpy(&from[0], p->flow.src, 4);
		__builtin_memcpy(&from[1], p->flow.dst, 4);
		__builtin_memcpy(&to[0], nat->src, 4);
		__builtin_memcpy(&to[1], nat->dst, 4);
		delta = csum_delta(from, to, 2);
		ip = packet_at(ctx, ETH_HLEN, sizeof(*ip));
		if (!ip)
			return -1;
		__builtin_memcpy(&ip->saddr, nat->src, 4);
		__builtin_memcpy(&ip->daddr, nat->dst, 4);
		ip->check = csum_apply(ip->check, delta);
	} else {
		struct ipv6hdr *ip6;

		/* flow.src/dst and nat.src/dst are adjacent, as in the header. */
		delta = csum_delta((const __u32 *)p->flow.src, (const __u32 *)nat->src, 8);
		ip6 = packet_at(ctx, ETH_HLEN, sizeof(*ip6));
		if (!ip6)
			return -1;
		__builtin_memcpy(&ip6->saddr, nat->src, 16);
		__builtin_memcpy(&ip6->daddr, nat->dst, 16);
		icmp_delta = csum_add(icmp_delta, delta);
	}
	check = packet_at(ctx, ie->icmp_off + ICMP_CSUM_OFF, 2);
	if (!check)
		return -1;
	*check = csum_apply(*check, icmp_delta);
	return 0;
}

/*
 * The entry whose rewrite an error about flow key's packets takes: the
 * reverse entry when key could be a reply (a backend → SNAT flow), else the
 * conntrack entry (a client → VIP flow). NULL: not a flow of ours.
 */
static __always_inline struct ct_entry *icmp_nat_entry(const struct flow *key)
{
	struct ct_entry *e = NULL;

	if (is_reply_port(key->dport))
		e = bpf_map_lookup_elem(&weir_v1_rnat, key);
	if (!e)
		e = bpf_map_lookup_elem(&weir_v1_ct, key);
	/* A reverse entry being reclaimed belongs to no flow. */
	if (e && e->seen == WEIR_SEEN_RECLAIMING)
		return NULL;
	return e;
}

/*
 * Counts a translated error as a packet of its flow's service, and of its
 * backend while the entry's counter slot is known to be its own.
 */
static __always_inline void icmp_nat_count(struct hook_ctx *ctx, __u32 service_id, __u32 generation, __u32 slot)
{
	struct active_generation *active;
	struct counters *c;

	c = bpf_map_lookup_elem(&weir_v1_svcstat, &service_id);
	if (c)
		count(c, hook_len(ctx), 0);
	active = bpf_map_lookup_elem(&weir_v1_active, &service_id);
	if (!active || active->generation != generation || slot == WEIR_NO_SLOT)
		return;
	c = backend_counters(service_id, slot);
	if (c)
		count(c, hook_len(ctx), 0);
}

/*
 * An ICMP or ICMPv6 packet p (parsed as far as its ICMP header): an error
 * about a NATed flow is translated and forwarded to the flow's other side;
 * NOT_HANDLED for one about a DSR flow or no flow (s->ie parsed, for
 * icmp_dsr_forward); anything else passes untouched. Out of line: errors are rare, and the
 * established path's frame must not grow by this one's locals.
 */
static __noinline int icmp_nat(struct hook_ctx *ctx, const struct packet *p)
{
	__u32 csum_addrs, csum_ports, generation, slot, action, icmp_delta = 0, zero = 0;
	__u16 sport, dport;
	struct icmp_scratch *s;
	struct ct_entry *e;

	s = bpf_map_lookup_elem(&weir_icmp_scratch, &zero);
	if (!s || parse_icmp_error(ctx, p, &s->ie) < 0)
		return HOOK_PASS;
	e = icmp_nat_entry(&s->ie.flow);
	/* Errors about DSR flows, and about flows of no entry (DSR hashes them), are icmp_dsr's. */
	if (!e || e->forwarding != WEIR_FWD_NAT)
		return NOT_HANDLED;
	__builtin_memcpy(&s->nat, &e->nat, sizeof(s->nat));
	csum_addrs = e->csum_addrs;
	csum_ports = e->csum_ports;
	generation = e->generation;
	slot = e->slot;

	/*
	 * The error goes where the flow's packets in its direction go: asked
	 * first, so that a packet the hook must leave to the stack is still
	 * untouched. The lookup is of the addresses only.
	 */
	sport = s->nat.sport;
	dport = s->nat.dport;
	s->nat.sport = 0;
	s->nat.dport = 0;
	__builtin_memset(&s->nh, 0, sizeof(s->nh));
	action = fib_decide(ctx, p, &s->nat, &s->fwd, &s->nh);
	if (hook_defers(action))
		return HOOK_PASS;
	s->nat.sport = sport;
	s->nat.dport = dport;

	if (icmp_nat_quoted_l4(ctx, &s->ie, &s->nat, csum_add(csum_addrs, csum_ports), &icmp_delta) < 0 ||
	    icmp_nat_quoted_l3(ctx, &s->ie, &s->nat, csum_addrs, &icmp_delta) < 0 ||
	    icmp_nat_outer(ctx, p, &s->ie, &s->nat, csum_add(icmp_delta, csum_ports)) < 0)
		return HOOK_DROP; /* half rewritten: it must not go anywhere */
	icmp_nat_count(ctx, s->nat.service_id, generation, slot);
	if (action == FWD_REDIRECT) {
		if (write_macs(ctx, &s->fwd) < 0)
			return HOOK_DROP;
		return hook_redirect(ctx, s->fwd.ifindex);
	}
	if (action == FWD_NEIGH)
		return hook_redirect_neigh(ctx, s->fwd.ifindex, &s->nh);
	return HOOK_PASS;
}

#endif /* WEIR_ICMP_NAT_H */
