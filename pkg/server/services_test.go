package server

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/weir-lb/weir/pkg/config"
)

// TestKeyPairFilesAreReadSafely: the certificate and key files are read at
// start with the configuration check's rules, since either may have been
// swapped since: a FIFO with no writer is refused at once instead of
// hanging the start, a device instead of filling memory.
func TestKeyPairFilesAreReadSafely(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "cert.pem")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ cert, key string }{{fifo, key}, {key, "/dev/zero"}} {
		done := make(chan error, 1)
		go func() {
			_, err := loadKeyPair(tc.cert, tc.key)
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, config.ErrNotRegularFile) {
				t.Errorf("loadKeyPair(%s, %s) = %v, want ErrNotRegularFile", tc.cert, tc.key, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("loadKeyPair(%s, %s) blocked", tc.cert, tc.key)
		}
	}
}
