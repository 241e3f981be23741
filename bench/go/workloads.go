package main

// The workloads both front ends run (micro.go, suite.go), written once: each returns what it
// measured and leaves the unit and the JSON to its caller. A wrong result calls fail().

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// statusKiB returns a "kB" field of /proc/self/status (VmRSS, VmHWM), or -1.
func statusKiB(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, field+":") {
			continue
		}
		f := strings.Fields(line[len(field)+1:])
		if len(f) >= 1 {
			if v, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				return v
			}
		}
	}
	return -1
}

// spawnN: n `go func() { wg.Done() }()` from one goroutine, then wg.Wait().
func spawnN(n int64) time.Duration {
	var wg sync.WaitGroup
	wg.Add(int(n))
	start := time.Now()
	for i := int64(0); i < n; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
	return time.Since(start)
}

func skynetNode(parent chan<- int64, num, size int64) {
	if size == 1 {
		parent <- num
		return
	}
	children := make(chan int64, 10)
	size /= 10
	for i := int64(0); i < 10; i++ {
		go skynetNode(children, num+i*size, size)
	}
	var sum int64
	for i := 0; i < 10; i++ {
		sum += <-children
	}
	parent <- sum
}

// skynetTree: the 10-way tree of goroutines down to `leaves` leaves; every node sends its sum
// to its parent on a channel the parent made with 10 slots. The sum must be leaves(leaves-1)/2.
func skynetTree(leaves int64) (time.Duration, int64) {
	root := make(chan int64, 1)
	start := time.Now()
	go skynetNode(root, 0, leaves)
	sum := <-root
	elapsed := time.Since(start)
	if want := leaves * (leaves - 1) / 2; sum != want {
		fail("skynet: sum %d, want %d", sum, want)
	}
	return elapsed, sum
}

// pingpongTrips: two goroutines, two unbuffered channels, `trips` round trips (v -> v+1).
func pingpongTrips(trips int64) time.Duration {
	ping := make(chan int64)
	pong := make(chan int64)
	finished := make(chan struct{})
	go func() {
		for v := range ping {
			pong <- v + 1
		}
		close(finished)
	}()
	start := time.Now()
	for i := int64(0); i < trips; i++ {
		ping <- i
		if v := <-pong; v != i+1 {
			fail("pingpong: got %d, want %d", v, i+1)
		}
	}
	elapsed := time.Since(start)
	close(ping)
	<-finished
	return elapsed
}

// goschedPair: GOMAXPROCS(1) while it runs (restored after), two goroutines each calling
// runtime.Gosched() `each` times; the time of all 2*each yields.
func goschedPair(each int64) time.Duration {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	var ready, done sync.WaitGroup
	ready.Add(2)
	done.Add(2)
	gate := make(chan struct{})
	for g := 0; g < 2; g++ {
		go func() {
			ready.Done()
			<-gate
			for i := int64(0); i < each; i++ {
				runtime.Gosched()
			}
			done.Done()
		}()
	}
	ready.Wait()
	start := time.Now()
	close(gate)
	done.Wait()
	return time.Since(start)
}

// parkedResult: what parkedN measured.
type parkedResult struct {
	rssBefore, rssParked int64         // VmRSS in KiB, before spawning and with all n parked
	started              time.Duration // spawn until all n have started
	total                time.Duration // spawn, park, close and wake of all n
}

// parkedN: n goroutines each blocked receiving from one shared channel; VmRSS is read before
// spawning and once all n have started (a WaitGroup tells), `settle` later; then the channel is
// closed and all of them are waited for.
func parkedN(n int64, settle time.Duration) parkedResult {
	runtime.GC()
	var r parkedResult
	r.rssBefore = statusKiB("VmRSS")
	gate := make(chan struct{})
	var started, exited sync.WaitGroup
	started.Add(int(n))
	exited.Add(int(n))
	start := time.Now()
	for i := int64(0); i < n; i++ {
		go func() {
			started.Done()
			<-gate
			exited.Done()
		}()
	}
	started.Wait()
	r.started = time.Since(start)
	if settle > 0 {
		time.Sleep(settle) // the last ones park
	}
	r.rssParked = statusKiB("VmRSS")
	close(gate)
	exited.Wait()
	r.total = time.Since(start)
	if r.rssBefore < 0 || r.rssParked < 0 {
		fail("parked: no usable VmRSS line in /proc/self/status")
	}
	return r
}

// sleepCapped: ants' benchmark. n goroutines each time.Sleep(d); the spawning loop takes a slot
// of a buffered channel of capacity `cap` (a semaphore) before each `go`, and the goroutine
// gives it back when done. cap <= 0: no semaphore (raw goroutines and a WaitGroup).
func sleepCapped(n int64, cap int, d time.Duration) time.Duration {
	var sema chan struct{}
	if cap > 0 {
		sema = make(chan struct{}, cap)
	}
	var wg sync.WaitGroup
	var slept int64
	wg.Add(int(n))
	start := time.Now()
	for i := int64(0); i < n; i++ {
		if sema != nil {
			sema <- struct{}{}
		}
		go func() {
			time.Sleep(d)
			atomic.AddInt64(&slept, 1)
			if sema != nil {
				<-sema
			}
			wg.Done()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if slept != n {
		fail("sleep: %d of %d tasks slept", slept, n)
	}
	return elapsed
}
