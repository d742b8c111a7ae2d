/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * Layout of every map weir's data plane shares with user space.
 *
 * These structs are the single definition: bpf2go mirrors them into Go
 * (bpf/weir_bpfel.go) and the BTF emitted for them is what lets bpftool
 * print named fields. Maps are pinned under stable, versioned names
 * (weir_v1_*) so that a new weir process reuses the state of the previous
 * one. Changing any struct below, a map's type or the meaning of a field is
 * a layout change: bump WEIR_LAYOUT_VERSION and rename every map to the new
 * version (weir_v2_*) so that old pinned maps are left alone rather than
 * misread.
 *
 * Conventions: addresses are 16 bytes in network byte order; an IPv4 address
 * fills the first 4 bytes and the rest are zero. Ports are in host byte
 * order, so bpftool shows them as humans write them. Every struct is padded
 * explicitly so that keys hash the same in the kernel and in Go.
 */
#ifndef WEIR_H
#define WEIR_H

#include <linux/types.h>

#define WEIR_LAYOUT_VERSION 1

/* Values of the ip_version fields. */
#define WEIR_IPV4 4
#define WEIR_IPV6 6

/*
 * Ports tried for one new flow before it is dropped as snat_exhausted, and
 * the step between the hash inputs of successive tries (2^32 / golden ratio).
 */
#define WEIR_SNAT_PROBES 32
#define WEIR_SNAT_PROBE_STEP 0x9e3779b9

/*
 * Seeds of the flow hashes: backend choice, SNAT port choice, and the UDP
 * source port of a GUE-encapsulated flow.
 */
#define WEIR_HASH_SEED_FLOW 0x77656972 /* "weir" */
#define WEIR_HASH_SEED_SNAT 0x736e6174 /* "snat" */
#define WEIR_HASH_SEED_GUE 0x67756520  /* "gue " */

/* IPv6 extension headers skipped before giving up on a packet. */
#define WEIR_MAX_IPV6_EXT 4

/*
 * How long an established flow trusts what its conntrack entry caches (the
 * forwarding decision and the ownership of its SNAT port) before checking
 * again; the loader overrides it (Options.FlowCacheTTL).
 */
#define WEIR_DEFAULT_FLOW_CACHE_TTL_NS 1000000000ULL

/*
 * How often at most a flow's packets refresh ct_entry.seen: rarely enough
 * that an established packet does not dirty its entry's cache line, often
 * enough that idle times are known to within a second.
 */
#define WEIR_SEEN_REFRESH_NS 1000000000ULL
/*
 * ct_entry.seen of a reverse entry whose SNAT port one CPU is reclaiming:
 * later than any clock reading, so the entry is neither idle nor refreshed
 * until the reclaiming CPU has overwritten it.
 */
#define WEIR_SEEN_RECLAIMING 0xffffffffffffffffULL
/*
 * How long a flow must have been idle before its SNAT port is reclaimed:
 * a closed TCP flow (both FINs or an RST seen), an open TCP flow, a UDP
 * flow. The loader overrides them (Options.ClosedFlowTimeout,
 * TCPIdleTimeout, UDPIdleTimeout).
 */
#define WEIR_DEFAULT_CLOSED_TIMEOUT_NS 2000000000ULL
#define WEIR_DEFAULT_TCP_IDLE_TIMEOUT_NS 7440000000000ULL /* 2 h 4 min */
#define WEIR_DEFAULT_UDP_IDLE_TIMEOUT_NS 120000000000ULL

/* Bits of ct_entry.tcp: what closing packets the flow has seen. */
#define WEIR_TCP_FIN_CLIENT 0x1  /* a FIN from the client */
#define WEIR_TCP_FIN_BACKEND 0x2 /* a FIN from the backend */
#define WEIR_TCP_RST 0x4         /* an RST, from either side */

/*
 * The IP length the forwarding decision is looked up for when a packet is
 * shorter: the Ethernet MTU, so that one lookup covers a flow's full-size
 * packets as well as its first, small one.
 */
#define WEIR_FIB_PROBE_LEN 1500

/*
 * How a service sends client packets to its backends (service.forwarding,
 * ct_entry.forwarding): full NAT, or direct server return with the client's
 * packet encapsulated unchanged in an outer IP header of its own family
 * (IPIP for IPv4, IPv6-in-IPv6), or in an outer IP and UDP header (GUE
 * version 1, "direct IP": the UDP payload is the client's packet), which
 * the backend decapsulates and answers from the VIP straight to the client.
 */
#define WEIR_FWD_NAT 0
#define WEIR_FWD_DSR_IPIP 1
#define WEIR_FWD_DSR_GUE 2

/* ct_entry.slot of a flow whose backend has no counters (it left the service). */
#define WEIR_NO_SLOT 0xffffffffU

/* Map sizes compiled into the object; the Go loader overrides them. */
#define WEIR_DEFAULT_MAX_SERVICES 16
#define WEIR_DEFAULT_MAX_BACKENDS 256
#define WEIR_DEFAULT_TABLE_SIZE 65537
#define WEIR_DEFAULT_MAX_FLOWS 262144

/* Why the program dropped a packet; indexes counters.drops. */
enum drop_reason {
	DROP_TABLE_EMPTY = 0,    /* the service's live half has no backends */
	DROP_NO_BACKEND = 1,     /* the Maglev entry names no backend */
	DROP_SNAT_EXHAUSTED = 2, /* every probed SNAT port is taken */
	DROP_REWRITE_FAILED = 3, /* a packet or checksum write failed */
	DROP_DSR_TOO_BIG = 4,    /* DSR: the encapsulated packet would exceed the route's MTU (answered with ICMP if DF) */
	DROP_REASONS = 5,
};

/*
 * A range of ports, [first, first + count): the SNAT ports of a service
 * (service.snat_ports), and the ports a packet must be addressed to for
 * the program to look it up as a reply (weir_v1_reply_ports). count 0 is
 * the empty range.
 */
struct port_range {
	__u16 first;
	__u16 count;
};

/* weir_v1_vips key: a virtual service as clients address it. */
struct vip_key {
	__u8 addr[16];
	__u16 port;
	__u8 proto;
	__u8 ip_version;
};

/* weir_v1_vips value. */
struct vip_value {
	__u32 service_id;
};

/*
 * weir_v1_active value, indexed by service id: the generation the program
 * reads. 0 means no service; otherwise half (generation & 1) is live. This is
 * the one word SetService writes to switch a service to new backends.
 */
struct active_generation {
	__u32 generation;
};

/*
 * weir_v1_svc value, indexed by service id * 2 + half. After DeleteService
 * the half of the last generation keeps that generation (and nothing else),
 * so that a re-created service continues counting: a generation never
 * names two different tables of one service, which is what lets conntrack
 * entries trust a matching generation.
 */
struct service {
	__u8 vip[16];
	__u8 snat[16]; /* source address towards backends */
	__u16 vip_port;
	__u8 proto;
	__u8 ip_version;
	__u32 generation; /* generation this half was written for */
	__u32 backend_count;
	struct port_range snat_ports; /* source ports new flows get on snat; DSR: none */
	__u8 forwarding;              /* WEIR_FWD_*; DSR: snat is the outer header's source */
	__u8 pad;
	__u16 gue_port; /* WEIR_FWD_DSR_GUE: the outer UDP header's destination port */
};

/* weir_v1_backend value, indexed by (service id * 2 + half) * max backends + i. */
struct backend {
	__u8 addr[16];
	__u16 port;
	__u8 ip_version;
	__u8 pad;
	__u32 slot; /* stable per-service counter slot, see live_value */
};

/* weir_v1_maglev value, indexed by (service id * 2 + half) * table size + j. */
struct maglev_entry {
	__u32 backend; /* index into the same half's backends */
};

/* weir_v1_live key: a backend that may receive packets of a service. */
struct live_key {
	__u32 service_id;
	__u8 addr[16];
	__u16 port;
	__u8 ip_version;
	__u8 pad;
};

/*
 * weir_v1_live value. A backend keeps its slot for as long as it stays in the
 * service, so its counters survive table changes; the slot indexes
 * weir_v1_bestat at service id * 2 * max backends + slot.
 */
struct live_value {
	__u32 slot;
};

/*
 * A packet's 5-tuple as it was received: the key of weir_v1_ct (client to
 * VIP) and of weir_v1_rnat (backend to SNAT address).
 */
struct flow {
	__u8 src[16];
	__u8 dst[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 ip_version;
	__u16 pad;
};

/* The 5-tuple to rewrite a packet to: SNAT address to backend, or VIP to client. */
struct nat {
	__u8 src[16];
	__u8 dst[16];
	__u16 sport;
	__u16 dport;
	__u32 service_id;
};

/* What a cached forwarding decision does with a translated packet. */
enum fwd_action {
	FWD_NONE = 0,     /* nothing cached: ask bpf_fib_lookup */
	FWD_REDIRECT = 1, /* write dmac and smac, bpf_redirect to ifindex */
	FWD_KERNEL = 2,   /* TC_ACT_OK: the kernel routes it (local, no route, ...) */
};

/*
 * One direction's forwarding decision, as bpf_fib_lookup gave it for the
 * rewritten packet. Trusted for the flow cache TTL after stamp, for packets
 * no longer than max_len (the FIB's MTU check passed for that length). A
 * next hop without a resolved neighbour is never cached: such packets go
 * through bpf_redirect_neigh until the kernel has resolved it.
 */
struct fwd_cache {
	__u64 stamp;   /* bpf_ktime_get_coarse_ns() at the lookup */
	__u32 ifindex; /* egress device of FWD_REDIRECT */
	__u16 max_len; /* longest IP packet (header included) known to fit */
	__u8 action;   /* enum fwd_action */
	__u8 pad;
	__u8 dmac[6];
	__u8 smac[6];
	__u32 pad2;
};

/*
 * weir_v1_ct value (client to VIP: rewrite to SNAT address to backend) and
 * weir_v1_rnat value (backend to SNAT address: rewrite to VIP to client).
 * Everything an established packet needs is here, so that it costs one
 * hash lookup: the rewrite, its checksum deltas (computed once, when the
 * entry is made), the backend's counter slot, and the forwarding decision.
 * generation is the service's live generation when the entry was last
 * checked; while it still is, the backend is still live and the slot still
 * its own, because only a new generation removes backends. seen and tcp
 * tell how alive the flow is, in both entries alike: the reverse entry's
 * decide when its SNAT port may be reclaimed.
 *
 * A direct-server-return entry (forwarding WEIR_FWD_DSR_*, in weir_v1_ct
 * only: replies never come back) keeps the outer header's source in
 * nat.src and the backend in nat.dst and nat.dport; with GUE, the outer
 * UDP header's source port in nat.sport and its destination port in
 * gue_port. The checksum deltas, seen and tcp are unused, and fwd.max_len
 * is the longest packet known to fit once encapsulated, outer headers
 * included.
 */
struct ct_entry {
	struct nat nat;   /* the rewrite; the SNAT port's owner in weir_v1_rnat */
	__u32 generation; /* weir_v1_active generation the entry was checked against */
	__u32 slot;       /* the backend's counter slot; WEIR_NO_SLOT: none */
	__u32 csum_addrs; /* one's complement delta of the address rewrite */
	__u32 csum_ports; /* one's complement delta of the port rewrite */
	__u64 seen;       /* bpf_ktime_get_coarse_ns() of a packet at most WEIR_SEEN_REFRESH_NS old */
	__u32 tcp;        /* WEIR_TCP_* bits: the flow's closing packets so far */
	__u8 forwarding;  /* WEIR_FWD_*: DSR entries encapsulate to nat.dst, from nat.src */
	__u8 pad;
	__u16 gue_port; /* WEIR_FWD_DSR_GUE: the outer UDP destination port */
	struct fwd_cache fwd;
};

/* weir_v1_svcstat and weir_v1_bestat value (per CPU). */
struct counters {
	__u64 packets;   /* translated packets, both directions */
	__u64 bytes;     /* their length including the Ethernet header */
	__u64 new_flows; /* conntrack entries created */
	__u64 drops[DROP_REASONS];
};

#endif /* WEIR_H */
