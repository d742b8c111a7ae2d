package main

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// latencyLog records when each request started and how long it took.
type latencyLog struct {
	mu      sync.Mutex
	samples []latencySample
}

type latencySample struct {
	at  time.Time
	dur time.Duration
}

func (l *latencyLog) add(at time.Time, d time.Duration) {
	l.mu.Lock()
	l.samples = append(l.samples, latencySample{at, d})
	l.mu.Unlock()
}

// p99 returns the 99th percentile of the requests that started inside
// (or outside) the windows.
func (l *latencyLog) p99(windows [][2]time.Time, inside bool) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ds []time.Duration
	for _, s := range l.samples {
		in := slices.ContainsFunc(windows, func(w [2]time.Time) bool { return !s.at.Before(w[0]) && s.at.Before(w[1]) })
		if in == inside {
			ds = append(ds, s.dur)
		}
	}
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[len(ds)*99/100]
}

// timedClients runs n keep-alive clients against addr, recording every
// request's latency, until stop is closed.
func timedClients(addr string, n int, lat *latencyLog, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			var c net.Conn
			var br *bufio.Reader
			for {
				select {
				case <-stop:
					if c != nil {
						c.Close()
					}
					return
				default:
				}
				if c == nil {
					var err error
					if c, err = net.Dial("tcp", addr); err != nil {
						continue
					}
					br = bufio.NewReader(c)
				}
				start := time.Now()
				closing, err := exchange(c, br, false)
				if err == nil {
					lat.add(start, time.Since(start))
				}
				if err != nil || closing {
					c.Close()
					c = nil
				}
			}
		})
	}
	return &wg
}

// BenchmarkUpgrade measures one graceful upgrade under keep-alive load:
// from SIGQUIT to the new weir serving (pid file written after the old one
// acknowledged its readiness), and to the old weir's exit; and the p99
// latency of requests that started during upgrades against the rest.
func BenchmarkUpgrade(b *testing.B) {
	lab := newUpgradeLab(b)
	logs := logFile(b)
	cur := startWeir(b, logs, "-c", lab.conf)
	lab.waitPIDFile(b, cur.cmd.Process.Pid)
	waitServing(b, lab.addr)
	lat := &latencyLog{}
	stop := make(chan struct{})
	clients := timedClients(lab.addr, 8, lat, stop)
	sock := filepath.Join(lab.dir, "upgrade.sock")

	var windows [][2]time.Time
	var toServing, toExit time.Duration
	for b.Loop() {
		next := startWeir(b, logs, "-u", "-c", lab.conf)
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(time.Millisecond) {
			if _, err := os.Stat(sock); err == nil {
				break // the successor waits for the sockets
			}
			if time.Now().After(deadline) {
				b.Fatal("the new weir did not open the upgrade socket")
			}
		}
		start := time.Now()
		cur.signal(b, syscall.SIGQUIT)
		lab.waitPIDFile(b, next.cmd.Process.Pid)
		toServing += time.Since(start)
		if err := cur.waitExit(b, 20*time.Second); err != nil {
			b.Fatalf("old weir: %v", err)
		}
		toExit += time.Since(start)
		windows = append(windows, [2]time.Time{start, time.Now()})
		cur = next
		time.Sleep(100 * time.Millisecond) // steady-state samples between upgrades
	}
	close(stop)
	clients.Wait()
	n := float64(b.N)
	b.ReportMetric(float64(toServing.Microseconds())/1000/n, "ms-to-successor-serving")
	b.ReportMetric(float64(toExit.Microseconds())/1000/n, "ms-to-old-exit")
	b.ReportMetric(float64(lat.p99(windows, true).Microseconds())/1000, "p99-ms-during-upgrade")
	b.ReportMetric(float64(lat.p99(windows, false).Microseconds())/1000, "p99-ms-steady")
	cur.signal(b, syscall.SIGTERM)
	cur.waitExit(b, 20*time.Second)
}
