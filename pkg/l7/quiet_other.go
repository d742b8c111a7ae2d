//go:build !linux

package l7

import "time"

// quietSet is empty where there is no epoll: connections never go quiet
// there (canWaitReadable is false), and add would send them to a
// goroutine of their own.
type quietSet struct{}

func (*quietSet) add(*conn) bool       { return false }
func (*quietSet) expireBy(t time.Time) {}
func (*quietSet) stop()                {}
