# weir build and test entry points. `make test` is the command CI runs.
GO ?= go

.PHONY: all build test fmt-check vet unit bench generate check-generate

all: build

build:
	$(GO) build ./...

# The whole suite: formatting, vet, the committed BPF bindings against a
# fresh generation, and every test with the race detector.
test: fmt-check vet check-generate unit

# Rebuild the BPF object and its Go bindings from bpf/*.c (needs clang and
# libbpf-dev: scripts/provision installs them).
generate:
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

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/...
