//go:build !linux

package main

// raiseFDLimit leaves the open files limit as it is outside Linux.
func raiseFDLimit() (uint64, error) { return 0, nil }
