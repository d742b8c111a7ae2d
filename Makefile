# weir build and test entry points. `make test` is the command CI runs.
GO ?= go

.PHONY: all build test fmt-check vet unit bench

all: build

build:
	$(GO) build ./...

# The whole suite: formatting, vet, and every test with the race detector.
test: fmt-check vet unit

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt: these files are not formatted:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/...
