/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * ICMP errors about TCP and UDP flows: recognising one and parsing the
 * packet it quotes (the "embedded" header), for every way of forwarding
 * that must deliver it to the side owning the flow (NAT: icmp_nat.h).
 *
 * Included by weir.c after packet_at, skip_ipv6_ext and struct packet,
 * which it uses: it is part of that program, not a library of its own.
 *
 * An error is taken only when
 *   - the outer packet is not a fragment (IPv4 MF or offset; an IPv6
 *     fragment header stops skip_ipv6_ext), and is ICMP type 3
 *     (destination unreachable, fragmentation needed included) or 11
 *     (time exceeded), or ICMPv6 type 1 (destination unreachable), 2
 *     (packet too big) or 3 (time exceeded);
 *   - the quoted packet is of the outer family, not a non-first IPv4
 *     fragment, TCP or UDP (errors about ICMP are not ours), with its IP
 *     header (IPv6: hop-by-hop and destination options skipped, as for
 *     the outer packet) and the first 8 bytes of its TCP or UDP header
 *     inside the packet;
 *   - the outer destination is the quoted packet's source: the error
 *     goes to whoever sent the packet it is about.
 * Everything else passes to the kernel untouched.
 */
#ifndef WEIR_ICMP_H
#define WEIR_ICMP_H

#define ICMP_HDR_LEN 8
#define ICMP_CSUM_OFF 2
#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PKT_TOOBIG 2
#define ICMPV6_TIME_EXCEED 3
/* The bytes of a quoted TCP header that hold its checksum: 16 and 17. */
#define TCP_CSUM_END (TCP_CSUM_OFF + 2)

/* A parsed ICMP error about a TCP or UDP packet. */
struct icmp_error {
	/*
	 * The 5-tuple of the flow the quoted packet answers: the quoted one
	 * reversed. For a packet a balancer sent, that is the key of the
	 * entry it was translated by (a client → VIP flow for a packet sent
	 * to the client, a backend → SNAT one for a packet sent to a
	 * backend); DSR hashes it to find the flow's backend as it did for
	 * the flow's own packets.
	 */
	struct flow flow;
	__u32 icmp_off;      /* offset of the ICMP header */
	__u32 quoted_l3_off; /* offset of the quoted IP header */
	__u32 quoted_l4_off; /* offset of the quoted TCP or UDP header */
	/*
	 * Offset of the quoted TCP or UDP checksum when all of it is in the
	 * packet (errors often quote only 8 bytes of TCP), else 0.
	 */
	__u32 quoted_csum_off;
};

/* Whether an outer ICMP (ipv6: ICMPv6) type is an error weir translates. */
static __always_inline int icmp_is_error(__u8 type, int ipv6)
{
	if (ipv6)
		return type == ICMPV6_DEST_UNREACH || type == ICMPV6_PKT_TOOBIG || type == ICMPV6_TIME_EXCEED;
	return type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED;
}

static __always_inline int parse_quoted_ipv4(struct hook_ctx *ctx, struct icmp_error *ie)
{
	struct iphdr *ip = packet_at(ctx, ie->quoted_l3_off, sizeof(*ip));

	if (!ip || ip->version != 4 || ip->ihl < 5)
		return -1;
	/* A later fragment quotes no ports; a first one does, and is allowed. */
	if (ip->frag_off & bpf_htons(IP_OFFSET))
		return -1;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return -1;
	__builtin_memcpy(ie->flow.dst, &ip->saddr, 4);
	__builtin_memcpy(ie->flow.src, &ip->daddr, 4);
	ie->flow.proto = ip->protocol;
	ie->quoted_l4_off = ie->quoted_l3_off + ip->ihl * 4;
	return 0;
}

static __always_inline int parse_quoted_ipv6(struct hook_ctx *ctx, struct icmp_error *ie)
{
	struct ipv6hdr *ip6 = packet_at(ctx, ie->quoted_l3_off, sizeof(*ip6));
	__u32 off = ie->quoted_l3_off + IPV6_HDR_LEN;
	__u8 next;

	if (!ip6 || ip6->version != 6)
		return -1;
	__builtin_memcpy(ie->flow.dst, &ip6->saddr, 16);
	__builtin_memcpy(ie->flow.src, &ip6->daddr, 16);
	next = ip6->nexthdr;
	if (skip_ipv6_ext(ctx, &next, &off) < 0 || (next != IPPROTO_TCP && next != IPPROTO_UDP))
		return -1;
	ie->flow.proto = next;
	ie->quoted_l4_off = off;
	return 0;
}

/*
 * Parses the ICMP error in packet p (parsed as far as its ICMP header,
 * p->l4_off) into ie. Returns 0 for an error about a TCP or UDP packet
 * sent by the error's destination, -1 for anything to leave alone.
 */
static __always_inline int parse_icmp_error(struct hook_ctx *ctx, const struct packet *p, struct icmp_error *ie)
{
	int ipv6 = p->flow.ip_version == WEIR_IPV6;
	__be16 *ports;
	__u8 *icmp;
	int err;

	__builtin_memset(ie, 0, sizeof(*ie));
	icmp = packet_at(ctx, p->l4_off, ICMP_HDR_LEN);
	if (!icmp || !icmp_is_error(icmp[0], ipv6))
		return -1;
	ie->icmp_off = p->l4_off;
	ie->quoted_l3_off = p->l4_off + ICMP_HDR_LEN;
	ie->flow.ip_version = p->flow.ip_version;
	if (ipv6)
		err = parse_quoted_ipv6(ctx, ie);
	else
		err = parse_quoted_ipv4(ctx, ie);
	if (err < 0)
		return -1;
	/* The quoted ports, and for UDP its length and checksum. */
	ports = packet_at(ctx, ie->quoted_l4_off, UDP_LEN);
	if (!ports)
		return -1;
	ie->flow.dport = bpf_ntohs(ports[0]);
	ie->flow.sport = bpf_ntohs(ports[1]);
	if (ie->flow.proto == IPPROTO_UDP)
		ie->quoted_csum_off = ie->quoted_l4_off + UDP_CSUM_OFF;
	else if (ie->quoted_l4_off + TCP_CSUM_END <= hook_len(ctx))
		ie->quoted_csum_off = ie->quoted_l4_off + TCP_CSUM_OFF;
	if (!addr_equal(ie->flow.dst, p->flow.dst))
		return -1;
	return 0;
}

#endif /* WEIR_ICMP_H */
