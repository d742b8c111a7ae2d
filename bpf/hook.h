/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * The hook weir.c is compiled for: tc (struct __sk_buff, the default) or
 * XDP (struct xdp_md, with -DWEIR_XDP). Everything in weir.c and its
 * headers takes a struct hook_ctx and reaches the packet only through this
 * file, so that one source holds the logic for both hooks; where the hooks
 * differ, the XDP side's constant answers (no GSO, no CHECKSUM_PARTIAL, no
 * neighbour resolution) let the compiler drop the other side's code.
 *
 * What differs, and how:
 *   - Packet access. tc may find headers outside the linear area and pulls
 *     them in; an XDP frame is linear (the program does not take
 *     multi-buffer frames), so what is not there is not in the packet.
 *   - The L4 checksum. tc's bpf_l4_csum_replace knows how the skb carries
 *     its checksum (CHECKSUM_PARTIAL: the field holds only the pseudo
 *     header's sum; CHECKSUM_COMPLETE: skb->csum must follow). XDP has no
 *     skb: the field is updated by RFC 1624 arithmetic, right for a
 *     complete checksum, which is what a NIC delivers. A frame from a local
 *     sender over a veth may still be CHECKSUM_PARTIAL when XDP sees it
 *     (its field holds the folded pseudo-header sum, the rest is left to
 *     offload), which XDP cannot tell: the arithmetic then subtracts the
 *     address delta that the field should gain and applies the port delta
 *     that offload would have summed, so the checksum that leaves is
 *     wrong. A lab whose clients send from the same host therefore turns
 *     transmit checksum offload off on the sending veth (ethtool -K DEV tx
 *     off); traffic from a real NIC needs nothing.
 *   - Room for an outer header: bpf_skb_adjust_room after the MAC header,
 *     or bpf_xdp_adjust_head and the MAC header moved to the new front.
 *   - Length of a generated answer: bpf_skb_change_tail or
 *     bpf_xdp_adjust_tail.
 *   - Sending. tc redirects to the FIB's device, or through
 *     bpf_redirect_neigh when the next hop's MAC is not known yet. XDP
 *     redirects (XDP_TX when the device is the one the frame came in on),
 *     and leaves an unresolved next hop to the stack: hook_defers says so
 *     before anything is rewritten or stored, and the frame passes
 *     untouched to the tc program behind it, which resolves the neighbour
 *     and translates it as if XDP had never seen it.
 *   - GSO: a tc packet may be a GSO aggregate (hook_gso_size); an XDP
 *     frame never is.
 *   - Verdicts: HOOK_PASS, HOOK_DROP; redirects return what the helper
 *     returns (TC_ACT_REDIRECT or XDP_REDIRECT) or XDP_TX.
 *
 * Included by weir.c after MAX_HDR_OFF; not a standalone header.
 */
#ifndef WEIR_HOOK_H
#define WEIR_HOOK_H

#ifdef WEIR_XDP
#define hook_ctx xdp_md
#define HOOK_XDP 1
#define HOOK_PASS XDP_PASS
#define HOOK_DROP XDP_DROP
#else
#define hook_ctx __sk_buff
#define HOOK_XDP 0
#define HOOK_PASS TC_ACT_OK
#define HOOK_DROP TC_ACT_SHOT
#endif

/*
 * ctx->data and ctx->data_end, read afresh at every use, by one load
 * straight off the context pointer. Left to itself, clang reuses an earlier
 * read through a 32-bit register move, or keeps &ctx->data in a register
 * across a helper call (in a function with several packet_at calls): the
 * verifier accepts neither, the first as a packet pointer, the second as a
 * context access.
 */
static __always_inline void *packet_start(struct hook_ctx *ctx)
{
	void *data;

	asm volatile("%0 = *(u32 *)(%1 + %2)" : "=r"(data) : "r"(ctx), "i"(__builtin_offsetof(struct hook_ctx, data)));
	return data;
}

static __always_inline void *packet_end(struct hook_ctx *ctx)
{
	void *end;

	asm volatile("%0 = *(u32 *)(%1 + %2)"
		     : "=r"(end)
		     : "r"(ctx), "i"(__builtin_offsetof(struct hook_ctx, data_end)));
	return end;
}

/* The packet's length from its Ethernet header on. */
static __always_inline __u32 hook_len(struct hook_ctx *ctx)
{
#ifdef WEIR_XDP
	return (__u32)((long)packet_end(ctx) - (long)packet_start(ctx));
#else
	return ctx->len;
#endif
}

/* The device the packet arrived on. */
static __always_inline __u32 hook_ifindex(struct hook_ctx *ctx)
{
#ifdef WEIR_XDP
	return ctx->ingress_ifindex;
#else
	return ctx->ifindex;
#endif
}

/* GSO segment payload size: 0 for a packet that leaves as it is (every XDP frame). */
static __always_inline __u32 hook_gso_size(struct hook_ctx *ctx)
{
#ifdef WEIR_XDP
	return 0;
#else
	return ctx->gso_size;
#endif
}

/* Makes the first len bytes directly accessible; -1 if the packet is shorter. */
static __always_inline int hook_pull(struct hook_ctx *ctx, __u32 len)
{
#ifdef WEIR_XDP
	return -1; /* a linear frame: everything there is is accessible */
#else
	if (len > ctx->len || bpf_skb_pull_data(ctx, len) < 0)
		return -1;
	return 0;
#endif
}

/*
 * Points at len bytes at offset off of the packet, pulling them into the
 * linear area when they are not there yet (tc only, and rare: headers
 * normally are). NULL when the packet is shorter. Every call may move the
 * packet, so a pointer is only good until the next call of this or of a
 * helper that changes packet data.
 */
static __always_inline void *packet_at(struct hook_ctx *ctx, __u32 off, const __u32 len)
{
	void *data, *end;

	if (off > MAX_HDR_OFF)
		return NULL;
	data = packet_start(ctx);
	end = packet_end(ctx);
	if (data + off + len <= end)
		return data + off;
	if (hook_pull(ctx, off + len) < 0)
		return NULL;
	data = packet_start(ctx);
	end = packet_end(ctx);
	if (data + off + len > end)
		return NULL;
	return data + off;
}

/* The Ethernet protocol of the packet, network byte order; 0 if it has no Ethernet header. */
static __always_inline __be16 hook_protocol(struct hook_ctx *ctx)
{
#ifdef WEIR_XDP
	struct ethhdr *eth = packet_at(ctx, 0, sizeof(*eth));

	return eth ? eth->h_proto : 0;
#else
	return ctx->protocol;
#endif
}

static __always_inline long hook_load_bytes(struct hook_ctx *ctx, __u32 off, void *to, __u32 len)
{
#ifdef WEIR_XDP
	return bpf_xdp_load_bytes(ctx, off, to, len);
#else
	return bpf_skb_load_bytes(ctx, off, to, len);
#endif
}

/* Stores len bytes at off; tc keeps a CHECKSUM_COMPLETE skb->csum right. */
static __always_inline long hook_store_bytes(struct hook_ctx *ctx, __u32 off, const void *from, __u32 len)
{
#ifdef WEIR_XDP
	return bpf_xdp_store_bytes(ctx, off, (void *)from, len);
#else
	return bpf_skb_store_bytes(ctx, off, from, len, BPF_F_RECOMPUTE_CSUM);
#endif
}

/*
 * Adds the one's complement delta to the TCP or UDP checksum at off (udp:
 * a zero checksum means none and stays zero, and a result of zero is
 * written as 0xffff). pseudo says the delta is of the pseudo header (the
 * addresses), which a CHECKSUM_PARTIAL field takes and a CHECKSUM_COMPLETE
 * skb->csum must not; ipv6 says which header the addresses are in.
 */
static __always_inline long hook_l4_csum_add(struct hook_ctx *ctx, __u32 off, __u32 delta, const int pseudo,
					     const int udp, const int ipv6)
{
#ifdef WEIR_XDP
	__u16 *check = packet_at(ctx, off, 2);
	__u32 sum;

	if (!check)
		return -1;
	if (udp && *check == 0)
		return 0;
	/* RFC 1624 eqn. 3: HC' = ~(~HC + m' - m), m' - m being the delta. */
	sum = (~(__u32)*check & 0xffff) + delta;
	sum += sum < delta; /* the end-around carry */
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = ~sum & 0xffff;
	if (udp && sum == 0)
		sum = 0xffff;
	*check = sum;
	return 0;
#else
	__u64 flags = (pseudo ? BPF_F_PSEUDO_HDR : 0) | (udp ? BPF_F_MARK_MANGLED_0 : 0);
	long err;

	if (!pseudo || !ipv6)
		return bpf_l4_csum_replace(ctx, off, 0, delta, flags);
	/*
	 * BPF_F_IPV6 keeps skb->csum right for CHECKSUM_COMPLETE packets,
	 * whose IPv6 header carries no checksum to absorb the change;
	 * kernels before 6.16 reject the flag, and there the old behaviour
	 * is all there is.
	 */
	err = bpf_l4_csum_replace(ctx, off, 0, delta, flags | BPF_F_IPV6);
	if (err == -22 /* EINVAL */)
		err = bpf_l4_csum_replace(ctx, off, 0, delta, flags);
	return err;
#endif
}

/*
 * Whether the packet is CHECKSUM_PARTIAL (a local sender's packet, over a
 * veth): its checksum is still to be completed at csum_start + csum_offset
 * when it leaves, which no helper clears. bpf_l4_csum_replace without
 * BPF_F_PSEUDO_HDR changes the field it is given only when the skb is not
 * partial: it is asked to, at the IP header's bytes 4-5 (IPv4 identification,
 * IPv6 flow label), which are then stored back as they were. XDP cannot
 * tell (see the top of this file) and takes every frame as complete.
 */
static __always_inline int hook_csum_partial(struct hook_ctx *ctx)
{
#ifdef WEIR_XDP
	return 0;
#else
	__u16 before, after;

	if (bpf_skb_load_bytes(ctx, ETH_HLEN + 4, &before, 2) < 0 ||
	    bpf_l4_csum_replace(ctx, ETH_HLEN + 4, 0, 1, 0) < 0 || bpf_skb_load_bytes(ctx, ETH_HLEN + 4, &after, 2) < 0)
		return -1;
	if (after == before)
		return 1;
	return bpf_skb_store_bytes(ctx, ETH_HLEN + 4, &before, 2, 0) < 0 ? -1 : 0;
#endif
}

/*
 * Inserts len bytes between the Ethernet header and the IP header, for an
 * outer header of the kind flags says (tc's BPF_F_ADJ_ROOM_ENCAP_*, which
 * adjust the skb's GSO and offload state; 0 for plain room).
 */
static __always_inline int hook_insert_room(struct hook_ctx *ctx, const __u32 len, __u64 flags)
{
#ifdef WEIR_XDP
	__u8 *data, *end;

	if (bpf_xdp_adjust_head(ctx, -(int)len) < 0)
		return -1;
	data = packet_start(ctx);
	end = packet_end(ctx);
	if (data + len + ETH_HLEN > end)
		return -1;
	/* The Ethernet header moves to the new front; len >= ETH_HLEN, so the copies do not overlap. */
	__builtin_memcpy(data, data + len, ETH_HLEN);
	return 0;
#else
	return bpf_skb_adjust_room(ctx, len, BPF_ADJ_ROOM_MAC, flags) < 0 ? -1 : 0;
#endif
}

/* Cuts or extends the packet to len bytes (tc: a GSO packet becomes a plain one). */
static __always_inline int hook_set_len(struct hook_ctx *ctx, __u32 len)
{
#ifdef WEIR_XDP
	return bpf_xdp_adjust_tail(ctx, (int)len - (int)hook_len(ctx)) < 0 ? -1 : 0;
#else
	return bpf_skb_change_tail(ctx, len, 0) < 0 ? -1 : 0;
#endif
}

/* Sends the packet out of device ifindex as it is. */
static __always_inline int hook_redirect(struct hook_ctx *ctx, __u32 ifindex)
{
#ifdef WEIR_XDP
	if (ifindex == ctx->ingress_ifindex)
		return XDP_TX;
#endif
	return bpf_redirect(ifindex, 0);
}

/* Sends the packet back out of the device it came in on. */
static __always_inline int hook_bounce(struct hook_ctx *ctx)
{
#ifdef WEIR_XDP
	return XDP_TX;
#else
	return bpf_redirect(ctx->ifindex, 0);
#endif
}

/*
 * Whether a packet whose forwarding decision is action (enum fwd_action or
 * FWD_NEIGH) must be left to the stack untouched: under XDP, a next hop
 * whose MAC address the kernel has not resolved yet (see the top).
 */
static __always_inline int hook_defers(__u32 action)
{
	return HOOK_XDP && action == FWD_NEIGH;
}

/*
 * Sends the packet out of device ifindex through next hop nh, resolving its
 * MAC address (tc only: hook_defers keeps XDP from getting here).
 */
static __always_inline int hook_redirect_neigh(struct hook_ctx *ctx, __u32 ifindex, const struct bpf_redir_neigh *nh)
{
#ifdef WEIR_XDP
	return XDP_PASS;
#else
	return bpf_redirect_neigh(ifindex, (struct bpf_redir_neigh *)nh, sizeof(*nh), 0);
#endif
}

#endif /* WEIR_HOOK_H */
