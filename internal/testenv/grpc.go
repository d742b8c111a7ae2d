package testenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
)

// GRPCService is a real gRPC service (grpc's own interop test protos):
// unary, server-, client- and bidirectional streaming, echoing what it
// receives. A unary call's trailer x-echo-len gives the length of the
// payload it echoed. Calls whose payload is "stall" wait for their
// context to end and report it on Cancelled; a unary call whose payload
// is "deadline" answers with how long it had left, as the backend sees
// it ("none" without a deadline).
type GRPCService struct {
	testpb.UnimplementedTestServiceServer
	// Cancelled is told which call a stalled one was ("unary", "server
	// stream") once its context ended.
	Cancelled chan string
	// Started is told of each stalled call, once it is stalled.
	Started chan struct{}
}

// NewGRPCService returns a GRPCService whose channels hold 16 events
// each.
func NewGRPCService() *GRPCService {
	return &GRPCService{Cancelled: make(chan string, 16), Started: make(chan struct{}, 16)}
}

func (s *GRPCService) stall(ctx context.Context, what string) error {
	s.Started <- struct{}{}
	<-ctx.Done()
	s.Cancelled <- what
	return ctx.Err()
}

// UnaryCall echoes the payload, or stalls, or tells its deadline.
func (s *GRPCService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	body := req.GetPayload().GetBody()
	switch string(body) {
	case "stall":
		return nil, s.stall(ctx, "unary")
	case "deadline":
		left := "none"
		if d, ok := ctx.Deadline(); ok {
			left = time.Until(d).String()
		}
		return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: []byte(left)}}, nil
	}
	grpc.SetTrailer(ctx, metadata.Pairs("x-echo-len", fmt.Sprint(len(body))))
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: body}}, nil
}

// StreamingOutputCall sends one message of each size asked for, then
// stalls if the payload says so.
func (s *GRPCService) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	for _, p := range req.GetResponseParameters() {
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: bytes.Repeat([]byte("o"), int(p.GetSize()))}}); err != nil {
			return err
		}
	}
	if string(req.GetPayload().GetBody()) == "stall" {
		return s.stall(stream.Context(), "server stream")
	}
	return nil
}

// StreamingInputCall answers with the total size of the payloads it
// received.
func (s *GRPCService) StreamingInputCall(stream grpc.ClientStreamingServer[testpb.StreamingInputCallRequest, testpb.StreamingInputCallResponse]) error {
	total := 0
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: int32(total)})
		}
		if err != nil {
			return err
		}
		total += len(req.GetPayload().GetBody())
	}
}

// FullDuplexCall echoes each message as it arrives.
func (s *GRPCService) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
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

// GRPCServe runs a real gRPC server on ln until t ends: over TLS when
// cfg is not nil, else h2c; serving svc when it is not nil, and grpc's
// own health service when withHealth is set. It returns the server and
// its health service (registered or not), whose statuses a test sets.
func GRPCServe(t testing.TB, ln net.Listener, cfg *tls.Config, svc testpb.TestServiceServer, withHealth bool) (*grpc.Server, *health.Server) {
	t.Helper()
	var opts []grpc.ServerOption
	if cfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
	}
	srv := grpc.NewServer(opts...)
	if svc != nil {
		testpb.RegisterTestServiceServer(srv, svc)
	}
	hs := health.NewServer()
	if withHealth {
		healthpb.RegisterHealthServer(srv, hs)
	}
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return srv, hs
}

// GRPCBackend is GRPCServe on a new loopback listener, whose address it
// returns.
func GRPCBackend(t testing.TB, cfg *tls.Config, svc testpb.TestServiceServer, withHealth bool) (string, *grpc.Server, *health.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, hs := GRPCServe(t, ln, cfg, svc, withHealth)
	return ln.Addr().String(), srv, hs
}

// GRPCClient returns a client of the TestService at addr, over TLS when
// cfg is not nil, else h2c with prior knowledge; it closes when t ends.
func GRPCClient(t testing.TB, addr string, cfg *tls.Config) testpb.TestServiceClient {
	t.Helper()
	creds := insecure.NewCredentials()
	if cfg != nil {
		creds = credentials.NewTLS(cfg)
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return testpb.NewTestServiceClient(cc)
}

// CheckGRPCServerStreaming asks client for one message of each of sizes
// and fails t unless they arrive, of those sizes, then the stream ends
// with status OK.
func CheckGRPCServerStreaming(t testing.TB, ctx context.Context, client testpb.TestServiceClient, sizes []int32) {
	t.Helper()
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
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if n := len(resp.GetPayload().GetBody()); n != int(want) {
			t.Errorf("message %d: %d bytes, want %d", i, n, want)
		}
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Errorf("after the last message: %v, want EOF (status OK)", err)
	}
}

// CheckGRPCLockStep plays n rounds of ping-pong over a bidirectional
// stream: each message must reach the backend and its echo the client
// before the next is sent, which a proxy holding bytes back in either
// direction deadlocks on (and fails on ctx's deadline). The stream must
// then end with status OK.
func CheckGRPCLockStep(t testing.TB, ctx context.Context, client testpb.TestServiceClient, n int) {
	t.Helper()
	stream, err := client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		msg := []byte(fmt.Sprintf("ping %d", i))
		if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: msg}}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("echo %d: %v", i, err)
		}
		if !bytes.Equal(resp.GetPayload().GetBody(), msg) {
			t.Fatalf("echo %d: %q", i, resp.GetPayload().GetBody())
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Errorf("after CloseSend: %v, want EOF", err)
	}
}
