package l4

import (
	"sync"
	"testing"
	"time"
)

// Every task runs at once, whether a worker is idle or not: none waits
// for another to finish, which a connection's two directions need. The
// second wave runs on the first wave's workers, then all end with done.
func TestWorkersRunTasksAtOnce(t *testing.T) {
	const tasks = 50
	done := make(chan struct{})
	w := newWorkers(done)
	defer close(done)
	for wave := range 2 {
		var started, finished sync.WaitGroup
		started.Add(tasks)
		finished.Add(tasks)
		all := make(chan struct{})
		for range tasks {
			w.run(func() {
				defer finished.Done()
				started.Done()
				<-all // returns only once every task has started
			})
		}
		waited := make(chan struct{})
		go func() { started.Wait(); close(all); finished.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(testTimeout):
			t.Fatalf("wave %d: not every task ran at once", wave)
		}
	}
}
