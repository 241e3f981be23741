// Command colonycompare is the Go side of colony's comparison suite (bench/compare): the same
// workloads as the C++ workers (bench/compare/*.cpp), written with goroutines, channels,
// sync.WaitGroup and a channel used as a semaphore. Standard library only.
//
// Usage (one repetition of one workload per process, as bench/compare/compare.py runs it):
//
//	colonycompare -workload W [-n N] [-procs P] [-cap C] [-sleep-ms MS] [-fib N] [-cutoff N]
//
// Output: one JSON line on stdout,
//
//	{"system":"Go","workload":W,"n":N,"procs":P,"value":X,"unit":U,"check":...,
//	 "maxrss_kib":K,"note":...,"extra":{...}}
//
// A wrong result (skynet sum, fib value, lost tasks) prints a message on stderr and exits 2.
//
// Workloads:
//
//	spawn     n goroutines `go func() { wg.Done() }()` from one goroutine, wg.Wait(); ns/op.
//	skynet    10-way tree of goroutines down to n leaves; each node sends its sum to its
//	          parent on a channel the parent made with 10 slots; must be n(n-1)/2; ms.
//	pingpong  two goroutines, two unbuffered channels, n round trips; ns/op per round trip.
//	yield     GOMAXPROCS(1), two goroutines each calling runtime.Gosched() n/2 times; ns/op
//	          per switch.
//	parked    n goroutines blocked receiving from one channel, then close(channel); B/task is
//	          the VmRSS growth with all of them parked divided by n.
//	sleep     n goroutines each time.Sleep(sleep-ms); the spawning loop takes a slot of a
//	          buffered channel of capacity cap (a semaphore) before each `go`, the goroutine
//	          gives it back when done (ants' benchmark); ms.
//	fib       fib(fib): one branch in a new goroutine (result over a channel), the other
//	          inline, sequential at or below cutoff; ms, next to the sequential time. One
//	          untimed parallel run comes first.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	flagWorkload = flag.String("workload", "", "spawn, skynet, pingpong, yield, parked, sleep or fib")
	flagN        = flag.Int64("n", 1_000_000, "tasks / leaves / round trips / switches")
	flagProcs    = flag.Int("procs", 0, "GOMAXPROCS (0: the Go default, the number of CPUs)")
	flagCap      = flag.Int("cap", 50_000, "sleep: concurrency cap")
	flagSleepMs  = flag.Int("sleep-ms", 10, "sleep: milliseconds each task sleeps")
	flagFib      = flag.Int("fib", 32, "fib: argument")
	flagCutoff   = flag.Int("cutoff", 20, "fib: sequential at or below this")
	// Accepted for symmetry with the C++ workers, unused.
	_ = flag.Int64("thread-cap", 0, "unused")
)

type result struct {
	System    string             `json:"system"`
	Workload  string             `json:"workload"`
	N         int64              `json:"n"`
	Procs     int                `json:"procs"`
	Value     float64            `json:"value"`
	Unit      string             `json:"unit"`
	Check     string             `json:"check"`
	MaxRSSKiB int64              `json:"maxrss_kib"`
	Note      string             `json:"note"`
	Extra     map[string]float64 `json:"extra"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "colonycompare Go: "+format+"\n", args...)
	os.Exit(2)
}

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

func perOp(d time.Duration, ops int64, check string) result {
	return result{Value: float64(d.Nanoseconds()) / float64(ops), Unit: "ns/op", Check: check,
		Extra: map[string]float64{"total_ms": float64(d.Nanoseconds()) / 1e6}}
}

func inMs(d time.Duration, check string) result {
	return result{Value: float64(d.Nanoseconds()) / 1e6, Unit: "ms", Check: check}
}

// ---------------------------------------------------------------- workloads

func spawn(n int64) result {
	var wg sync.WaitGroup
	wg.Add(int(n))
	start := time.Now()
	for i := int64(0); i < n; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
	return perOp(time.Since(start), n, fmt.Sprintf("%d done", n))
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

func skynet(n int64) result {
	root := make(chan int64, 1)
	start := time.Now()
	go skynetNode(root, 0, n)
	sum := <-root
	elapsed := time.Since(start)
	if want := n * (n - 1) / 2; sum != want {
		fail("skynet sum %d, want %d", sum, want)
	}
	return inMs(elapsed, fmt.Sprintf("sum=%d", sum))
}

func pingpong(n int64) result {
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
	for i := int64(0); i < n; i++ {
		ping <- i
		if v := <-pong; v != i+1 {
			fail("pingpong: got %d, want %d", v, i+1)
		}
	}
	elapsed := time.Since(start)
	close(ping)
	<-finished
	return perOp(elapsed, n, fmt.Sprintf("%d round trips", n))
}

func yield(n int64) result {
	runtime.GOMAXPROCS(1)
	each := n / 2
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
	r := perOp(time.Since(start), 2*each, fmt.Sprintf("%d yields", 2*each))
	r.Note = "GOMAXPROCS 1, runtime.Gosched"
	return r
}

func parked(n int64) result {
	runtime.GC()
	rss0 := statusKiB("VmRSS")
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
	time.Sleep(5 * time.Millisecond) // the last ones park
	rss1 := statusKiB("VmRSS")
	close(gate)
	exited.Wait()
	elapsed := time.Since(start)
	return result{Value: float64(rss1-rss0) * 1024 / float64(n), Unit: "B/task",
		Check: fmt.Sprintf("%d woken", n),
		Extra: map[string]float64{"rss_before_kib": float64(rss0), "rss_parked_kib": float64(rss1),
			"tasks": float64(n), "park_wake_ms": float64(elapsed.Nanoseconds()) / 1e6}}
}

func sleep(n int64, cap int, d time.Duration) result {
	sema := make(chan struct{}, cap)
	var wg sync.WaitGroup
	var slept int64
	wg.Add(int(n))
	start := time.Now()
	for i := int64(0); i < n; i++ {
		sema <- struct{}{}
		go func() {
			time.Sleep(d)
			atomic.AddInt64(&slept, 1)
			<-sema
			wg.Done()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if slept != n {
		fail("sleep: %d of %d tasks slept", slept, n)
	}
	return inMs(elapsed, fmt.Sprintf("%d slept", n))
}

//go:noinline
func fibSeq(n int) int64 {
	if n < 2 {
		return int64(n)
	}
	return fibSeq(n-1) + fibSeq(n-2)
}

func pfib(n, cutoff int) int64 {
	if n <= cutoff {
		return fibSeq(n)
	}
	left := make(chan int64, 1)
	go func() { left <- pfib(n-1, cutoff) }()
	right := pfib(n-2, cutoff)
	return <-left + right
}

func fib(n, cutoff int) result {
	var want, b int64 = 0, 1
	for i := 0; i < n; i++ {
		want, b = b, want+b
	}
	pfib(n, cutoff) // untimed warm-up, as the C++ workers do
	start := time.Now()
	seq := fibSeq(n)
	seqD := time.Since(start)
	start = time.Now()
	par := pfib(n, cutoff)
	parD := time.Since(start)
	if seq != want || par != want {
		fail("fib(%d) = %d / %d, want %d", n, seq, par, want)
	}
	r := inMs(parD, fmt.Sprintf("fib(%d)=%d", n, par))
	seqMs := float64(seqD.Nanoseconds()) / 1e6
	parMs := float64(parD.Nanoseconds()) / 1e6
	r.Extra = map[string]float64{"seq_ms": seqMs, "speedup": seqMs / parMs}
	r.Note = fmt.Sprintf("sequential %.1f ms, speed-up %.2fx", seqMs, seqMs/parMs)
	return r
}

func main() {
	flag.Parse()
	if flag.NArg() != 0 || *flagN <= 0 || *flagCap <= 0 || *flagCutoff < 1 {
		flag.Usage()
		os.Exit(64)
	}
	if *flagProcs > 0 {
		runtime.GOMAXPROCS(*flagProcs)
	}
	procs := runtime.GOMAXPROCS(0)
	n := *flagN
	var r result
	switch *flagWorkload {
	case "spawn":
		r = spawn(n)
	case "skynet":
		for m := n; m > 1; m /= 10 {
			if m%10 != 0 {
				fmt.Fprintln(os.Stderr, "colonycompare: skynet needs -n a power of 10")
				os.Exit(64)
			}
		}
		r = skynet(n)
	case "pingpong":
		r = pingpong(n)
	case "yield":
		r = yield(n)
	case "parked":
		r = parked(n)
	case "sleep":
		r = sleep(n, *flagCap, time.Duration(*flagSleepMs)*time.Millisecond)
	case "fib":
		r = fib(*flagFib, *flagCutoff)
	default:
		fmt.Fprintf(os.Stderr, "colonycompare: unknown workload %q\n", *flagWorkload)
		os.Exit(64)
	}
	r.System, r.Workload, r.N, r.Procs = "Go", *flagWorkload, n, procs
	r.MaxRSSKiB = statusKiB("VmHWM")
	if r.Extra == nil {
		r.Extra = map[string]float64{}
	}
	b, err := json.Marshal(r)
	if err != nil {
		fail("json: %v", err)
	}
	os.Stdout.Write(append(b, '\n'))
}
