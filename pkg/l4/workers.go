package l4

import "time"

// workerIdle is how long a goroutine that has run a task waits for the
// next one before it ends.
const workerIdle = 10 * time.Second

// workers runs tasks on goroutines that outlive them: a goroutine that has
// finished a task takes the next one handed out within workerIdle. A new
// goroutine starts with a small stack that a connection's work (dialling
// above all) grows twice, copying it each time; a busy proxy would pay
// that, and the goroutine's creation, twice a connection — about 5 % of
// its CPU time in the lab's new-connection benchmark.
type workers struct {
	tasks chan func() // unbuffered: a send succeeds only to a waiting worker
	done  <-chan struct{}
}

func newWorkers(done <-chan struct{}) *workers {
	return &workers{tasks: make(chan func()), done: done}
}

// run runs task on a waiting worker, or on a new one when none waits.
func (w *workers) run(task func()) {
	select {
	case w.tasks <- task:
	default:
		go w.work(task)
	}
}

// work runs task, then the tasks it is handed, until none comes for
// workerIdle or done is closed.
func (w *workers) work(task func()) {
	task()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		select {
		case task = <-w.tasks:
			task()
			idle.Reset(workerIdle)
		case <-idle.C:
			return
		case <-w.done:
			return
		}
	}
}
