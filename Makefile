# posterctl — `make run` starts the cluster, `make test` runs every test.
GO       ?= go
BIN      := bin/posterctl
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
TESTBIN  := bin/posterctl-race

.PHONY: build run test test-pg e2e bench bench-lb bench-lb-wrk lint cross clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/posterctl

run: build
	./$(BIN) up

# One -race build of the binary is shared by every package's integration tests;
# atexit_sleep_ms=0 spares the race runtime's 1 s pause at every child exit.
test:
	@[ -n "$$POSTERCTL_TEST_POSTGRES" ] || echo "note: POSTERCTL_TEST_POSTGRES is unset, so the PostgreSQL tests skip (.ci/run sets it up)"
	$(GO) build -race -ldflags "$(LDFLAGS)" -o $(TESTBIN) ./cmd/posterctl
	GORACE=atexit_sleep_ms=0 POSTERCTL_TEST_BIN=$(CURDIR)/$(TESTBIN) $(GO) test -race -count=1 -timeout 15m ./...

# The same tests with the PostgreSQL ones run against a throwaway server
# started from the installed binaries (apt-get install postgresql); no
# running server is needed, and none of the machine's clusters is touched.
test-pg:
	./scripts/test-pg

# Browser tests only; they fail (rather than skip) when chromium is missing.
e2e:
	$(GO) build -race -ldflags "$(LDFLAGS)" -o $(TESTBIN) ./cmd/posterctl
	GORACE=atexit_sleep_ms=0 POSTERCTL_E2E=1 POSTERCTL_TEST_BIN=$(CURDIR)/$(TESTBIN) $(GO) test -race -count=1 -run Browser -v ./...

# Issue 13's figures in one run, each with the CPU per request of every
# process, in about five minutes: the LB against direct, nginx and HAProxy
# (GET and POST 512 B, access logs on and off, wrk when installed), the cost
# of one access line, the app through `posterctl up` with 2 backends (wrk
# -t1 -c64), and one backend alone. Set up the contenders with
# apt-get install nginx haproxy wrk; POSTERCTL_BENCH_BASELINE_BIN=<posterctl
# built from main> adds the baseline's figures beside each. Not part of test.
WRK := $(wildcard /usr/bin/wrk)
bench:
	POSTERCTL_BENCH_ACCESSLOG=both $(if $(WRK),POSTERCTL_BENCH_LOADGEN=wrk) \
	  $(GO) test -run '^$$' -bench LoadBalancer -benchtime $(if $(WRK),1x,3s) -count=1 -timeout 10m ./proxy/
	$(GO) test -run '^$$' -bench AccessLine -benchtime 1000000x -count=1 ./proxy/
	$(GO) test -run '^$$' -bench 'BenchmarkUp$$' -benchtime 5x -count=1 -timeout 10m ./app/integration/
	$(GO) test -run '^$$' -bench BackendCPU -benchtime 1s -count=1 -timeout 10m ./app/integration/

# The load balancer alone, longer and so steadier; nginx and HAProxy join the
# same run when installed (apt-get install nginx haproxy).
bench-lb:
	$(GO) test -run '^$$' -bench LoadBalancer -benchtime 10s -count=1 ./proxy/

bench-lb-wrk:
	POSTERCTL_BENCH_LOADGEN=wrk $(GO) test -run '^$$' -bench LoadBalancer -benchtime 3s -count=1 ./proxy/

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

# Every platform the binary must build for; features a platform lacks
# refuse at run time with a clear error.
CROSS := linux/amd64 linux/arm64 linux/386 darwin/arm64 freebsd/amd64 windows/amd64
cross:
	@set -e; for t in $(CROSS); do \
	  echo "cross: $$t"; \
	  GOOS=$${t%/*} GOARCH=$${t#*/} CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/posterctl; \
	done

clean:
	rm -rf bin
