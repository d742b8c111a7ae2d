//go:build !race

package testenv

// Race reports whether the race detector is on. Code under it runs several
// times slower, so tests that bound a latency give it more room.
const Race = false
