package server

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// TestGRPCThroughTheConfiguration: a pool of a real gRPC server, spoken
// to in h2c and checked with gRPC's health service, carries unary and
// streaming calls from a gRPC client (h2c with prior knowledge); when
// the health service says NOT_SERVING the backend is down in the status
// and calls fail UNAVAILABLE, and SERVING brings it back.
func TestGRPCThroughTheConfiguration(t *testing.T) {
	backend, _, hs := testenv.GRPCBackend(t, nil, testenv.NewGRPCService(), true)

	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	srv := serving(t, fmt.Sprintf(`version: 1
upstreams:
  grpc:
    backends: [%q]
    alpn: h2c
    health_check: {type: grpc, interval: 100ms, timeout: 100ms, consecutive_failure: 2}
services:
  - name: front
    kind: http_proxy
    listen: [%q]
    routes:
      - match: {path: {prefix: /grpc.testing.TestService/}}
        upstream: grpc
`, backend, addr), nil, nil)

	client := testenv.GRPCClient(t, addr, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	unary := func() error {
		body := bytes.Repeat([]byte("u"), 70_000)
		resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: body}})
		if err == nil && !bytes.Equal(resp.GetPayload().GetBody(), body) {
			t.Fatalf("unary call echoed %d bytes, want %d", len(resp.GetPayload().GetBody()), len(body))
		}
		return err
	}
	t.Run("unary", func(t *testing.T) {
		if err := unary(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("server streaming", func(t *testing.T) {
		testenv.CheckGRPCServerStreaming(t, ctx, client, []int32{1, 100_000, 7})
	})
	t.Run("bidirectional streaming, lock-step", func(t *testing.T) {
		testenv.CheckGRPCLockStep(t, ctx, client, 20)
	})

	t.Run("NOT_SERVING takes the backend down", func(t *testing.T) {
		hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
		waitHealth(t, srv, "grpc", backend, false)
		for range 3 {
			if err := unary(); status.Code(err) != codes.Unavailable {
				t.Fatalf("a call with the backend down: %v, want UNAVAILABLE", err)
			}
		}
		hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		waitHealth(t, srv, "grpc", backend, true)
		if err := unary(); err != nil {
			t.Fatalf("a call with the backend back: %v", err)
		}
	})
}

// waitHealth waits up to 5 s for the status API to report backend of
// pool healthy or not.
func waitHealth(t *testing.T, srv *Server, pool, backend string, healthy bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, b := range serviceNamed(t, srv.Status(), pool).Backends {
			if b.Addr == backend && b.Healthy == healthy {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend %s of %s not healthy=%v after 5 s: %+v", backend, pool, healthy, serviceNamed(t, srv.Status(), pool))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
