# weir build and test entry points. `make test` is the command CI runs.
GO ?= go

.PHONY: all build test deps fmt-check vet unit fuzz bench generate check-generate

all: build

build:
	$(GO) build ./...

# The whole suite: the Debian packages it needs, formatting, vet, the
# committed BPF bindings against a fresh generation, every test with the
# race detector, and a bounded run of every fuzz target.
test: deps fmt-check vet check-generate unit fuzz

# Install what the build and tests need and is missing (clang, libbpf-dev,
# bpftool, ...); nothing, quickly, when everything is there.
deps:
	@bash scripts/provision

# Rebuild the BPF object and its Go bindings from bpf/*.c (needs clang and
# libbpf-dev: `make deps` installs them).
generate: deps
	$(GO) generate ./bpf/

# Fail when the committed bindings are not what the sources generate.
check-generate: generate
	@git diff --quiet -- bpf/ || { git --no-pager diff --stat -- bpf/; \
		echo "bpf/: committed bindings differ from a fresh 'make generate': regenerate and commit"; exit 1; }

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt: these files are not formatted:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 ./...

# Fuzz each target, of the HTTP/1.x parser, the HTTP/2 codec and the
# HTTP/2 server, the routing table and the PROXY protocol reader, for
# FUZZTIME beyond its seeds (which every `go test` runs): a count of
# inputs, not a duration, since a duration can fail with a bare "context
# deadline exceeded" on a loaded machine (golang/go#75804). The HTTP/2
# server's target runs a whole connection per input, so it gets
# FUZZTIME_SLOW (the same as FUZZTIME when that is a duration). A failing input lands in the package's testdata/fuzz:
# commit it with the fix, it becomes a seed.
FUZZ_PKGS ?= ./pkg/l7/h1/ ./pkg/l7/h2/ ./pkg/l7/ ./pkg/route/ ./pkg/proxyproto/
FUZZTIME ?= 200000x
FUZZTIME_SLOW ?= $(if $(filter %x,$(FUZZTIME)),20000x,$(FUZZTIME))
FUZZ_SLOW = FuzzH2Server
fuzz:
	@for pkg in $(FUZZ_PKGS); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			budget=$(FUZZTIME); \
			case " $(FUZZ_SLOW) " in *" $$f "*) budget=$(FUZZTIME_SLOW);; esac; \
			echo "fuzz $$pkg $$f for $$budget"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $$budget $$pkg || exit 1; \
		done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/...
