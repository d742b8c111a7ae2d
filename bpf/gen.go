// Package bpf holds weir's eBPF programs and the Go bindings bpf2go generates
// from them: the data plane in weir.c, with the map layout it shares with
// user space in weir.h, compiled once for tc (weir_bpfel.go, weir_bpfel.o)
// and once for XDP with -DWEIR_XDP (weirxdp_bpfel.go, weirxdp_bpfel.o; hook.h
// holds everything the two hooks do differently), which pkg/dataplane loads
// and drives; and the SO_REUSEPORT steering in reuseport.c
// (reuseport_bpfel.go, reuseport_bpfel.o), which pkg/reuseport drives.
// Nothing else should import this package.
//
// Regenerate after editing weir.c or its headers with `go generate ./bpf/` (or
// `make generate`); the output is reproducible, so CI regenerates and diffs.
package bpf

// The -idirafter pair finds <asm/types.h> on Debian and Ubuntu multiarch
// layouts for amd64 and arm64; a missing directory is ignored.
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3 -idirafter /usr/include/x86_64-linux-gnu -idirafter /usr/include/aarch64-linux-gnu" -target bpfel -type drop_reason Weir weir.c
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3 -DWEIR_XDP -idirafter /usr/include/x86_64-linux-gnu -idirafter /usr/include/aarch64-linux-gnu" -target bpfel WeirXdp weir.c
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3 -idirafter /usr/include/x86_64-linux-gnu -idirafter /usr/include/aarch64-linux-gnu" -target bpfel -type rp_ctl Reuseport reuseport.c
