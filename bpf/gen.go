// Package bpf holds weir's eBPF data plane: the tc program in weir.c, the map
// layout it shares with user space in weir.h, and the Go bindings bpf2go
// generates from them (weir_bpfel.go, weir_bpfel.o). pkg/dataplane loads and
// drives it; nothing else should import this package.
//
// Regenerate after editing weir.c or weir.h with `go generate ./bpf/` (or
// `make generate`); the output is reproducible, so CI regenerates and diffs.
package bpf

// The -idirafter pair finds <asm/types.h> on Debian and Ubuntu multiarch
// layouts for amd64 and arm64; a missing directory is ignored.
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3 -idirafter /usr/include/x86_64-linux-gnu -idirafter /usr/include/aarch64-linux-gnu" -target bpfel -type drop_reason Weir weir.c
