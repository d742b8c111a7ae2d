// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
//go:build ignore

/*
 * SO_REUSEPORT steering for weir's listeners (pkg/reuseport).
 *
 * A listen address served with `threads: K` is a reuseport group of K
 * sockets. The kernel would hash new connections over every socket in the
 * group, including one that is about to close, whose queued connections
 * are then reset. This program instead picks among the sockets the control
 * plane declares active, so a socket leaves the rotation before it closes.
 * Attached as BPF_SK_REUSEPORT_SELECT_OR_MIGRATE (Linux 5.14+), it also
 * runs when a listener closes with connections still queued or mid
 * handshake (md->migrating_sk set) and moves them to an active socket.
 *
 * The maps, pinned per group under <pin_path>/reuseport/<group>/:
 *   weir_rp1_socks   REUSEPORT_SOCKARRAY, slot -> socket (a lookup from
 *                    user space reads the socket cookie). The kernel empties
 *                    a slot when its socket closes.
 *   weir_rp1_active  ARRAY, position -> slot, for positions below count.
 *   weir_rp1_ctl     ARRAY of one rp_ctl: the number of active positions.
 * User space rewrites every position before it changes the count, so one
 * read of the count and one of a position always name an active socket.
 */

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* The group size limit; reuseport.MaxSockets in Go. */
#define RP_MAX_SOCKETS 128

struct rp_ctl {
	/* Active positions in weir_rp1_active; 0 lets the kernel choose. */
	__u32 count;
};

struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, RP_MAX_SOCKETS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_rp1_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RP_MAX_SOCKETS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_rp1_active SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rp_ctl);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_rp1_ctl SEC(".maps");

/* select_at selects the socket at active position pos; 0 on success. */
static __always_inline long select_at(struct sk_reuseport_md *md, __u32 pos)
{
	__u32 *slot = bpf_map_lookup_elem(&weir_rp1_active, &pos);

	if (!slot)
		return -1;
	return bpf_sk_select_reuseport(md, &weir_rp1_socks, slot, 0);
}

/*
 * steer selects an active socket by the connection's hash. If that socket
 * is gone (closed a moment ago, its slot already empty), the next position
 * is tried once; failing that, no selection is made and the kernel hashes
 * over the group: a connection is better placed anywhere than dropped.
 */
static __always_inline int steer(struct sk_reuseport_md *md)
{
	__u32 zero = 0, count, pos;
	struct rp_ctl *ctl = bpf_map_lookup_elem(&weir_rp1_ctl, &zero);

	if (!ctl)
		return SK_PASS;
	count = *(volatile __u32 *)&ctl->count;
	if (count == 0 || count > RP_MAX_SOCKETS)
		return SK_PASS;
	pos = md->hash % count;
	if (select_at(md, pos) == 0)
		return SK_PASS;
	select_at(md, (pos + 1) % count);
	return SK_PASS;
}

/*
 * The same choice serves a new connection and a migrating one: the closing
 * socket left the active set before it closed.
 */
SEC("sk_reuseport/migrate")
int weir_rp_migrate(struct sk_reuseport_md *md)
{
	return steer(md);
}

/* For kernels before 5.14, which have no migration. */
SEC("sk_reuseport")
int weir_rp_select(struct sk_reuseport_md *md)
{
	return steer(md);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
