//go:build race

package accesslog

// raceEnabled tells allocation tests that sync.Pool, under the race
// detector, drops a share of what is put back on purpose, so pooled
// line buffers are reallocated at random.
const raceEnabled = true
