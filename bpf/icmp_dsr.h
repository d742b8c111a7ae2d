/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * ICMP for direct server return, both ways:
 *
 * - The MTU answer (dsr_answer_too_big): a client packet that the route to
 *   its backend takes only without the outer header is turned, in place,
 *   into an ICMP "fragmentation needed" (IPv4, type 3 code 4) or ICMPv6
 *   "packet too big" (type 2) from the VIP to the client, carrying the MTU
 *   the client must use (the route's MTU less the outer headers: IP, and
 *   UDP with GUE), and sent
 *   back out of the interface it came in on with its MAC addresses swapped,
 *   as Katran does. It quotes the client's packet from its IP header on, as
 *   much as fits in 576 bytes (IPv4, RFC 1812) or 1280 (IPv6, RFC 4443),
 *   cut to a multiple of 4 bytes (never less than the IP header and 8
 *   bytes of TCP or UDP: the client's kernel matches the error to its
 *   socket by those). Only a packet that forbids fragmenting is answered
 *   (IPv4 DF; every IPv6 packet): one that allows it would not make its
 *   sender lower anything, and the balancer does not fragment the outer
 *   packet, so it is dropped. Either way the packet counts as dsr_too_big:
 *   it did not reach the backend. Answers are not rate-limited (Katran's
 *   are not either): each one answers a packet the client sent and must
 *   resend smaller, so they are as many as the client's oversized packets,
 *   which PMTU discovery stops after the first round trip.
 *
 * - Forwarding errors about DSR flows (icmp_dsr_forward): an error arriving
 *   at the VIP quotes a VIP → client packet that a backend sent directly
 *   (a router on the client's path sends "packet too big" and the like to
 *   the VIP). The quoted tuple reversed is the flow's client → VIP key; its
 *   backend is its conntrack entry's while that is live, else the one the
 *   Maglev table gives that key, the same hash as the flow's own packets,
 *   so that a balancer that never saw the flow (after an ECMP change)
 *   finds it too. The error goes to that backend unchanged, encapsulated
 *   like the flow's packets; the backend's kernel, which holds the VIP on
 *   its loopback, matches it to the socket and lowers its path MTU. An
 *   error whose quoted flow is no DSR service's VIP passes untouched.
 *
 * Included by weir.c after icmp.h and icmp_nat.h, which parses the errors
 * and hands over those about DSR flows and about no flow at all; dsr.h
 * declares dsr_answer_too_big.
 */
#ifndef WEIR_ICMP_DSR_H
#define WEIR_ICMP_DSR_H

#define ICMP_FRAG_NEEDED 4
#define IPV4_ICMP_MAX 576 /* RFC 1812 4.3.2.3: an error is at most this long */
#define IPV6_MIN_MTU 1280 /* RFC 4443 2.4(c): as much as fits in the minimum MTU */
#define ICMP4_QUOTE_MAX (IPV4_ICMP_MAX - 20 - ICMP_HDR_LEN)
#define ICMP6_QUOTE_MAX (IPV6_MIN_MTU - IPV6_HDR_LEN - ICMP_HDR_LEN)
#define ICMP4_QUOTE_MIN (20 + 8)
#define ICMP6_QUOTE_MIN (IPV6_HDR_LEN + 8)
/* The longest block bpf_csum_diff sums in one call. */
#define CSUM_DIFF_MAX 512

/*
 * The answer as it will lie in the packet from its IP header on. Longer
 * than any answer: the checksum's three blocks of CSUM_DIFF_MAX bytes are
 * bounded by the verifier as if each were full.
 */
struct dsr_icmp_buf {
	__u8 b[IPV6_HDR_LEN + 3 * CSUM_DIFF_MAX];
	/*
	 * Off the stack, which the full path's frames leave little of:
	 * dsr_route_mtu's lookup (struct bpf_fib_lookup), icmp_dsr_forward's
	 * flow and next hop (struct bpf_redir_neigh). Words, not the structs,
	 * whose anonymous unions bpf2go cannot mirror.
	 */
	__u64 fib[sizeof(struct bpf_fib_lookup) / 8];
	struct packet q;
	__u32 nh[sizeof(struct bpf_redir_neigh) / 4];
	struct vip_key vk;
};

/* Per CPU, not pinned: it holds nothing between packets. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dsr_icmp_buf);
} weir_dsr_icmp_buf SEC(".maps");

static __always_inline __u16 csum_fold32(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/*
 * The one's complement sum of len bytes at from (a multiple of 4, at most
 * 3 * CSUM_DIFF_MAX), added to sum.
 */
static __always_inline __u32 csum_block(__u8 *from, __u32 len, __u32 sum)
{
	__s64 r;

#pragma unroll
	for (int i = 0; i < 3; i++) {
		__u32 n = len > CSUM_DIFF_MAX ? CSUM_DIFF_MAX : len;

		if (n == 0)
			break;
		r = bpf_csum_diff(NULL, 0, (__be32 *)(from + i * CSUM_DIFF_MAX), n, sum);
		if (r < 0)
			return sum;
		sum = (__u32)r;
		len -= n;
	}
	return sum;
}

/*
 * The MTU of the route to e's backend, which the encapsulated packet of
 * outer_len bytes does not fit; 0 if the FIB now takes it after all.
 */
static __always_inline __u32 dsr_route_mtu(struct hook_ctx *ctx, const struct packet *p, const struct ct_entry *e,
					   __u32 outer_len, struct bpf_fib_lookup *fib)
{
	fib_params(ctx, p, &e->nat, outer_len > 0xffff ? 0xffff : outer_len, fib);
	fib->l4_protocol = dsr_outer_proto(e, p->flow.ip_version);
	fib->sport = bpf_htons(e->nat.sport); /* GUE's, as dsr_fib asks; 0 for IPIP */
	fib->dport = bpf_htons(e->gue_port);
	if (bpf_fib_lookup(ctx, fib, sizeof(*fib), 0) != BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return 0;
	return fib->mtu_result;
}

/* Writes the IPv4 answer's headers into buf for a quote of quote bytes; returns its length. */
static __always_inline __u32 answer_headers4(struct dsr_icmp_buf *buf, const struct packet *p, __u32 mtu,
					     __u32 quote)
{
	struct iphdr *ip = (struct iphdr *)buf->b;
	__u8 *icmp = buf->b + sizeof(*ip);
	__u32 len = sizeof(*ip) + ICMP_HDR_LEN + quote;

	__builtin_memset(ip, 0, sizeof(*ip) + ICMP_HDR_LEN);
	ip->version = 4;
	ip->ihl = sizeof(*ip) / 4;
	ip->tot_len = bpf_htons(len);
	ip->id = (__u16)bpf_get_prandom_u32();
	ip->ttl = IPIP_TTL;
	ip->protocol = IPPROTO_ICMP;
	__builtin_memcpy(&ip->saddr, p->flow.dst, 4); /* the VIP, which the client sent to */
	__builtin_memcpy(&ip->daddr, p->flow.src, 4);
	ip->check = ipv4_header_csum(ip);
	icmp[0] = ICMP_DEST_UNREACH;
	icmp[1] = ICMP_FRAG_NEEDED;
	*(__be16 *)(icmp + 6) = bpf_htons(mtu);
	*(__u16 *)(icmp + ICMP_CSUM_OFF) = csum_fold32(csum_block(icmp, ICMP_HDR_LEN + quote, 0));
	return len;
}

/* Writes the IPv6 answer's headers into buf for a quote of quote bytes; returns its length. */
static __always_inline __u32 answer_headers6(struct dsr_icmp_buf *buf, const struct packet *p, __u32 mtu,
					     __u32 quote)
{
	struct ipv6hdr *ip6 = (struct ipv6hdr *)buf->b;
	__u8 *icmp = buf->b + IPV6_HDR_LEN;
	__u32 msg_len = ICMP_HDR_LEN + quote, sum;

	__builtin_memset(ip6, 0, IPV6_HDR_LEN + ICMP_HDR_LEN);
	ip6->version = 6;
	ip6->payload_len = bpf_htons(msg_len);
	ip6->nexthdr = IPPROTO_ICMPV6;
	ip6->hop_limit = IPIP_TTL;
	__builtin_memcpy(&ip6->saddr, p->flow.dst, 16);
	__builtin_memcpy(&ip6->daddr, p->flow.src, 16);
	icmp[0] = ICMPV6_PKT_TOOBIG;
	*(__be32 *)(icmp + 4) = bpf_htonl(mtu);
	/* The pseudo header: both addresses, the length, the next header. */
	sum = csum_block(buf->b + 8, 32, 0);
	sum = csum_add(sum, bpf_htonl(msg_len));
	sum = csum_add(sum, bpf_htonl(IPPROTO_ICMPV6));
	*(__u16 *)(icmp + ICMP_CSUM_OFF) = csum_fold32(csum_block(icmp, msg_len, sum));
	return IPV6_HDR_LEN + msg_len;
}

/* Swaps the frame's MAC addresses: the answer goes back to the hop the packet came from. */
static __always_inline int swap_macs(struct hook_ctx *ctx)
{
	__u8 *eth = packet_at(ctx, 0, 2 * ETH_ALEN);
	__u8 tmp[ETH_ALEN];

	if (!eth)
		return -1;
	__builtin_memcpy(tmp, eth, ETH_ALEN);
	__builtin_memcpy(eth, eth + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(eth + ETH_ALEN, tmp, ETH_ALEN);
	return 0;
}

/*
 * How far the answer is moved behind a CHECKSUM_PARTIAL packet's checksum
 * start (see partial_csum_fixup): far enough that the field the kernel
 * (or the NIC) fills in, 16 (TCP) or 6 (UDP) bytes after it, lies in the
 * quoted packet's TCP options or payload, which no receiver reads.
 */
#define PARTIAL_SHIFT 64

/*
 * For a CHECKSUM_PARTIAL packet: the kernel (skb_checksum_help, when the
 * way out does not offload checksums) or the NIC will sum the bytes from
 * csum_start (the client's L4 header, which the answer, PARTIAL_SHIFT bytes
 * later in the packet, puts t bytes into the ICMP message) to the end and
 * store the complement at csum_start + csum_off, where the quote holds the
 * word q: that part of the message then sums to ~q. The ICMP checksum is
 * set so that the rest (with the pseudo header seed for ICMPv6) sums to q,
 * which keeps the whole message right whether or not the field is filled
 * in: a receiver given the packet still partial trusts it, and then the
 * quote is as it was.
 */
static __always_inline int partial_csum_fixup(__u8 *msg, __u32 t, __u32 csum_off, __u32 msg_len, __u32 seed)
{
	__u16 *check = (__u16 *)(msg + ICMP_CSUM_OFF);
	__u32 f = t + csum_off, a;
	__u16 q;

	if (t > 2 * CSUM_DIFF_MAX || f + 2 > msg_len || f + 2 > 3 * CSUM_DIFF_MAX || (t & 3))
		return -1;
	q = *(__u16 *)(msg + f);
	*check = 0;
	a = (__u16)~csum_fold32(csum_block(msg, t, seed));
	*check = (__u16)~csum_fold32(csum_add(q, (__u16)~a));
	return 0;
}

/*
 * Turns client packet p of DSR entry e, too big for the route to its
 * backend once encapsulated, into the ICMP answer (see the top of this
 * file) and sends it back where it came from; HOOK_DROP when the packet
 * is not to be answered or the answer cannot be built. The caller has
 * counted it as dsr_too_big.
 */
static __noinline int dsr_answer_too_big(struct hook_ctx *ctx, const struct packet *p, const struct ct_entry *e)
{
	struct dsr_icmp_buf *buf;
	__u32 zero = 0, mtu, quote, len, hdr, csum_off, seed = 0;
	int partial;

	if (p->flow.ip_version == WEIR_IPV4) {
		struct iphdr *ip = packet_at(ctx, ETH_HLEN, sizeof(*ip));

		if (!ip || !(ip->frag_off & bpf_htons(IP_DF)))
			return HOOK_DROP;
	}
	buf = bpf_map_lookup_elem(&weir_dsr_icmp_buf, &zero);
	if (!buf)
		return HOOK_DROP;
	mtu = dsr_route_mtu(ctx, p, e, dsr_outer_len(ctx, p, e->forwarding), (struct bpf_fib_lookup *)buf->fib);
	if (mtu <= dsr_overhead(p->flow.ip_version, e->forwarding) || mtu > 0xffff)
		return HOOK_DROP;
	mtu -= dsr_overhead(p->flow.ip_version, e->forwarding); /* what the client's packets may be */
	quote = hook_len(ctx) - ETH_HLEN;
	if (p->flow.ip_version == WEIR_IPV4) {
		if (quote > ICMP4_QUOTE_MAX)
			quote = ICMP4_QUOTE_MAX;
		quote &= ~3U;
		if (quote < ICMP4_QUOTE_MIN || quote > ICMP4_QUOTE_MAX)
			return HOOK_DROP;
		if (hook_load_bytes(ctx, ETH_HLEN, buf->b + 20 + ICMP_HDR_LEN, quote) < 0)
			return HOOK_DROP;
		len = answer_headers4(buf, p, mtu, quote);
	} else {
		if (quote > ICMP6_QUOTE_MAX)
			quote = ICMP6_QUOTE_MAX;
		quote &= ~3U;
		if (quote < ICMP6_QUOTE_MIN || quote > ICMP6_QUOTE_MAX)
			return HOOK_DROP;
		if (hook_load_bytes(ctx, ETH_HLEN, buf->b + IPV6_HDR_LEN + ICMP_HDR_LEN, quote) < 0)
			return HOOK_DROP;
		len = answer_headers6(buf, p, mtu, quote);
	}
	if (len > IPV6_MIN_MTU)
		return HOOK_DROP;
	partial = hook_csum_partial(ctx);
	if (partial < 0)
		return HOOK_DROP;
	if (partial) {
		hdr = p->flow.ip_version == WEIR_IPV4 ? sizeof(struct iphdr) : IPV6_HDR_LEN;
		if (p->flow.ip_version == WEIR_IPV6) {
			seed = csum_block(buf->b + 8, 32, 0);
			seed = csum_add(seed, bpf_htonl(len - IPV6_HDR_LEN));
			seed = csum_add(seed, bpf_htonl(IPPROTO_ICMPV6));
		}
		csum_off = p->flow.proto == IPPROTO_TCP ? TCP_CSUM_OFF : UDP_CSUM_OFF;
		if (p->l4_off < ETH_HLEN + hdr || p->l4_off > MAX_HDR_OFF)
			return HOOK_DROP;
		if (partial_csum_fixup(buf->b + hdr, p->l4_off - ETH_HLEN - hdr + PARTIAL_SHIFT, csum_off, len - hdr,
				       seed) < 0)
			return HOOK_DROP;
		/* The headers before csum_start move back; csum_start stays with its byte. */
		if (hook_insert_room(ctx, PARTIAL_SHIFT, 0) < 0)
			return HOOK_DROP;
	}
	/* Trimming a GSO packet makes it a plain one (the helper resets its GSO state). */
	if (hook_set_len(ctx, ETH_HLEN + len) < 0)
		return HOOK_DROP;
	if (hook_store_bytes(ctx, ETH_HLEN, buf->b, len) < 0 || swap_macs(ctx) < 0)
		return HOOK_DROP;
	return hook_bounce(ctx);
}

/*
 * An ICMP error p that icmp_nat parsed into its scratch and left alone: one
 * about a DSR flow, or about a flow with no entry. If the quoted flow
 * (client → VIP) is a DSR service's, the error is sent on to the flow's
 * backend encapsulated (see the top of this file) and counted as a packet
 * of the service and backend; anything else passes untouched.
 */
static __noinline int icmp_dsr_forward(struct hook_ctx *ctx, const struct packet *p)
{
	struct live_value *live = NULL;
	struct active_generation *active;
	struct icmp_scratch *s;
	struct dsr_icmp_buf *buf;
	struct counters *svc_stats;
	struct vip_value *vip;
	struct service *svc;
	struct ct_entry *e, *ct;
	struct packet *q;
	__u32 service_id, half_index, action, zero = 0;
	int reason;

	s = bpf_map_lookup_elem(&weir_icmp_scratch, &zero);
	e = bpf_map_lookup_elem(&weir_scratch, &zero);
	buf = bpf_map_lookup_elem(&weir_dsr_icmp_buf, &zero);
	if (!s || !e || !buf)
		return HOOK_PASS;
	__builtin_memset(&buf->vk, 0, sizeof(buf->vk));
	__builtin_memcpy(buf->vk.addr, s->ie.flow.dst, 16);
	buf->vk.port = s->ie.flow.dport;
	buf->vk.proto = s->ie.flow.proto;
	buf->vk.ip_version = s->ie.flow.ip_version;
	vip = bpf_map_lookup_elem(&weir_v1_vips, &buf->vk);
	if (!vip)
		return HOOK_PASS;
	service_id = vip->service_id;
	active = bpf_map_lookup_elem(&weir_v1_active, &service_id);
	if (!active || active->generation == 0)
		return HOOK_PASS;
	half_index = service_id * 2 + (active->generation & 1);
	svc = bpf_map_lookup_elem(&weir_v1_svc, &half_index);
	svc_stats = bpf_map_lookup_elem(&weir_v1_svcstat, &service_id);
	if (!svc || !svc_stats || svc->forwarding == WEIR_FWD_NAT)
		return HOOK_PASS;
	__builtin_memset(e, 0, sizeof(*e));
	e->generation = active->generation;

	/* The flow's key for the backend's choice, the error's own length for the route's. */
	q = &buf->q;
	__builtin_memcpy(q, p, sizeof(*q));
	__builtin_memcpy(&q->flow, &s->ie.flow, sizeof(q->flow));
	__builtin_memset(buf->nh, 0, sizeof(buf->nh));
	ct = bpf_map_lookup_elem(&weir_v1_ct, &q->flow);
	if (ct && dsr_entry_current(ct, service_id, svc))
		live = live_backend(service_id, ct->nat.dst, ct->nat.dport, q->flow.ip_version);
	if (live) {
		__builtin_memcpy(&e->nat, &ct->nat, sizeof(e->nat));
		e->slot = live->slot;
	} else {
		e->nat.service_id = service_id;
		reason = dsr_choose(q, half_index, svc, e);
		if (reason >= 0)
			return drop(svc_stats, NULL, reason);
	}
	dsr_set_encap(e, svc, q);
	action = dsr_fib(ctx, q, e, (struct bpf_redir_neigh *)buf->nh);
	if (hook_defers(action))
		return HOOK_PASS;
	if (action == FWD_TOO_BIG)
		return drop(svc_stats, backend_counters(service_id, e->slot), DROP_DSR_TOO_BIG);
	return dsr_send(ctx, q, e, action, (struct bpf_redir_neigh *)buf->nh, 0);
}

#endif /* WEIR_ICMP_DSR_H */
