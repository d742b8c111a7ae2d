//go:build race

package l4

// raceEnabled tells allocation tests that sync.Pool, under the race
// detector, drops a share of what is put back on purpose, so pooled
// buffers are reallocated at random.
const raceEnabled = true
