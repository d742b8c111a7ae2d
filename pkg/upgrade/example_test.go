//go:build linux

package upgrade_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/weir-lb/weir/pkg/upgrade"
)

// Both sides of an upgrade, in one process for the example: in weir the
// new process (weir -u) runs the goroutine's part, and the old one runs
// the rest on SIGQUIT. Either may start first.
func Example() {
	dir, _ := os.MkdirTemp("", "weir-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "upgrade.sock") // upgrade_sock
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The old process serves "web" on this listener.
	old, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := old.Addr().String()

	// The new process.
	adopted := make(chan net.Listener, 1)
	go func() {
		in, err := upgrade.Receive(ctx, path)
		if err != nil {
			fmt.Println("new process:", err) // the old one keeps serving
			close(adopted)
			return
		}
		defer in.Close() // closes what the configuration no longer uses
		ln, err := in.Listener("web", addr, 0, 0)
		if err != nil {
			in.Abort(err)
			close(adopted)
			return
		}
		// ... load the rest, run the first health checks, then:
		if err := in.Ready(ctx); err != nil {
			fmt.Println("new process:", err)
		}
		adopted <- ln
	}()

	// The old process, on SIGQUIT.
	sock, err := upgrade.FromListener("web", addr, 0, 0, old)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sock.File.Close()
	h, err := upgrade.Offer(ctx, path, []upgrade.Socket{sock})
	if err != nil {
		fmt.Println("old process keeps serving:", err)
		return
	}
	if err := h.Wait(ctx); err != nil {
		fmt.Println("old process keeps serving:", err)
		return
	}
	old.Close() // stop accepting; drain
	fmt.Println("old process: the new one serves", addr == sock.Bound.String())

	ln := <-adopted
	if ln != nil {
		defer ln.Close()
		fmt.Println("new process: serving on the same socket", ln.Addr().String() == addr)
	}
	// Output:
	// old process: the new one serves true
	// new process: serving on the same socket true
}
