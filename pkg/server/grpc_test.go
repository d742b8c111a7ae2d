package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// echoService is a real gRPC service (grpc's interop test protos) that
// echoes: unary, server streaming and bidirectional streaming.
type echoService struct {
	testpb.UnimplementedTestServiceServer
}

func (echoService) UnaryCall(_ context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
}

func (echoService) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	for _, p := range req.GetResponseParameters() {
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: bytes.Repeat([]byte("o"), int(p.GetSize()))}}); err != nil {
			return err
		}
	}
	return nil
}

func (echoService) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

// TestGRPCThroughTheConfiguration: a pool of a real gRPC server, spoken
// to in h2c and checked with gRPC's health service, carries unary and
// streaming calls from a gRPC client (h2c with prior knowledge); when
// the health service says NOT_SERVING the backend is down in the status
// and calls fail UNAVAILABLE, and SERVING brings it back.
func TestGRPCThroughTheConfiguration(t *testing.T) {
	gs := grpc.NewServer()
	testpb.RegisterTestServiceServer(gs, echoService{})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	backend := ln.Addr().String()

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

	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	client := testpb.NewTestServiceClient(cc)
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
		sizes := []int32{1, 100_000, 7}
		var params []*testpb.ResponseParameters
		for _, s := range sizes {
			params = append(params, &testpb.ResponseParameters{Size: s})
		}
		stream, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{ResponseParameters: params})
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range sizes {
			resp, err := stream.Recv()
			if err != nil || len(resp.GetPayload().GetBody()) != int(want) {
				t.Fatalf("message %d: %v, %d bytes, want %d", i, err, len(resp.GetPayload().GetBody()), want)
			}
		}
		if _, err := stream.Recv(); err != io.EOF {
			t.Fatalf("after the last message: %v, want EOF", err)
		}
	})
	t.Run("bidirectional streaming, lock-step", func(t *testing.T) {
		stream, err := client.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			msg := []byte(fmt.Sprintf("ping %d", i))
			if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: msg}}); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil || !bytes.Equal(resp.GetPayload().GetBody(), msg) {
				t.Fatalf("echo %d: %v %q", i, err, resp.GetPayload().GetBody())
			}
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != io.EOF {
			t.Fatalf("after CloseSend: %v, want EOF", err)
		}
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
