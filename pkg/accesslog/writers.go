package accesslog

import (
	"errors"
	"fmt"
	"sync"
)

// Writers keeps one Writer per path, so that services logging to the same
// file share its Writer (each with its own Format) instead of racing two
// writer goroutines on one file. Paths are compared once made absolute.
// It is safe for concurrent use.
type Writers struct {
	opts   Options
	mu     sync.Mutex
	open   map[string]*Writer
	closed bool
}

// NewWriters returns an empty set whose Writers are opened with opts.
func NewWriters(opts Options) *Writers {
	return &Writers{opts: opts, open: make(map[string]*Writer)}
}

// Get returns the Writer for path, opening it on first use.
func (ws *Writers) Get(path string) (*Writer, error) {
	key, err := canonicalPath(path)
	if err != nil {
		return nil, err
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed {
		return nil, fmt.Errorf("access log %s: %w", key, ErrClosed)
	}
	if w, ok := ws.open[key]; ok {
		return w, nil
	}
	w, err := Open(key, ws.opts)
	if err != nil {
		return nil, err
	}
	ws.open[key] = w
	return w, nil
}

// ReopenAll reopens every Writer (on SIGUSR1, after logrotate renamed the
// files). It returns every failure, joined; a Writer that fails keeps
// writing to its old file.
func (ws *Writers) ReopenAll() error {
	var errs []error
	for _, w := range ws.list() {
		errs = append(errs, w.Reopen())
	}
	return errors.Join(errs...)
}

// CloseAll closes every Writer, all at once so that the whole takes one
// CloseTimeout at most, and returns every failure, joined. Get fails
// afterwards; a second CloseAll does nothing.
func (ws *Writers) CloseAll() error {
	ws.mu.Lock()
	all := make([]*Writer, 0, len(ws.open))
	for _, w := range ws.open {
		all = append(all, w)
	}
	ws.open, ws.closed = nil, true
	ws.mu.Unlock()
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, w := range all {
		wg.Go(func() { errs[i] = w.Close() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// list returns the Writers open now.
func (ws *Writers) list() []*Writer {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	all := make([]*Writer, 0, len(ws.open))
	for _, w := range ws.open {
		all = append(all, w)
	}
	return all
}
