package l7

import (
	"context"
	"net/http"
	"testing"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/retry"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// TestRetryGRPC: a gRPC call is a POST, so a policy retries it only
// where it never left: a refused connect is retried on the real backend,
// a 503 answered by the first backend reaches the client (as
// UNAVAILABLE) and the call is not sent again.
func TestRetryGRPC(t *testing.T) {
	real, _, _ := testenv.GRPCBackend(t, nil, testenv.NewGRPCService(), false)
	dead := testenv.RefusedAddr(t)
	unavailable := startOriginTLS(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }, nil, h2cServer)
	for _, tc := range []struct {
		name  string
		first string
		want  codes.Code
	}{{"refused connect", dead, codes.OK}, {"503", unavailable.addr, codes.Unavailable}} {
		t.Run(tc.name, func(t *testing.T) {
			before := unavailable.requests.Load()
			pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, tc.first, real)
			pol := &retry.Policy{On: retry.Of(retry.Connect, retry.Reset, retry.Status503), Attempts: 2}
			addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool, Template: Peer{ALPN: ALPNH2C, Retry: pol}}})
			ctx, cancel := context.WithTimeout(context.Background(), grpcTestTimeout)
			defer cancel()
			_, err := testenv.GRPCClient(t, addr, nil).UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("x")}})
			if got := status.Code(err); got != tc.want {
				t.Fatalf("call ended %v (%v), want %v", got, err, tc.want)
			}
			if st := pol.Stats(); tc.want == codes.OK && st.Retries[retry.Connect] != 1 {
				t.Errorf("stats %+v, want the refused connect retried once", st)
			}
			if tc.want != codes.OK {
				if n := unavailable.requests.Load() - before; n != 1 {
					t.Errorf("the 503 backend saw %d calls, want 1", n)
				}
				if st := pol.Stats(); st.Total != 0 {
					t.Errorf("%d retries of a call that was sent", st.Total)
				}
			}
		})
	}
}
