// Command colonybench is the Go side of colony's benchmarks: the same workloads as the C++
// ones, written with goroutines, channels, sync and a channel used as a semaphore. Standard
// library only. It has two front ends over one set of workloads (workloads.go), because its two
// callers want different things:
//
//	colonybench -bench NAME|all [-reps N] [-parked N] [-procs P]
//	colonybench -workload W [-n N] [-procs P] [-cap C] [-sleep-ms MS] [-fib N] [-cutoff N]
//
// -bench is the micro comparison (micro.go; bench/run.sh micro and pool): fixed sizes, several
// repetitions in one process, one JSON object per line and repetition,
//
//	{"system":"go","bench":NAME,"rep":i,"value":X,"unit":U,"procs":P}
//
// followed, per record name, by a summary line with "rep":"median". "procs" is the GOMAXPROCS
// in effect while the workload ran (1 for gosched). parked, sleep and sleep_raw measure process
// memory (VmRSS deltas, VmHWM which never decreases, and Go keeps the stacks and g structures
// of dead goroutines for reuse), so each of their repetitions runs in a fresh child process
// (this binary re-executed with -child-rep); their default -reps is 1, every other workload's 5.
//
//	skynet     10-way tree of goroutines down to 1,000,000 leaves; every node sends its sum to
//	           its parent on a channel the parent made with 10 slots; ms per tree
//	spawn      1,000,000 `go func(){ wg.Done() }()` from one goroutine, wg.Wait(); ns/op
//	gosched    GOMAXPROCS(1), two goroutines each calling runtime.Gosched() 1,000,000 times;
//	           ns per yield
//	pingpong   1,000,000 round trips over two unbuffered channels; ns per round trip
//	select     Go's BenchmarkSelectUncontended on one goroutine; ns per select
//	selectdyn2, selectdyn100
//	           the same over 2 or 100 channels with reflect.Select; ns per select
//	chanbuf1, chanbuf4
//	           1M values through a 128-slot channel from 1 or 4 producers; ns per value
//	mutex      8 goroutines taking one sync.Mutex 100k times each; ns per lock
//	wgfanin    100k goroutines each calling Done on one WaitGroup; ns per goroutine
//	parked     -parked goroutines (1,000,000) blocked on one channel: "parked" is the VmRSS
//	           growth per goroutine (bytes/op), "parked_time" the spawn time (ms)
//	sleep      ants' BenchmarkSemaphore: 1,000,000 x time.Sleep(10ms), at most 50,000 at once
//	           (a buffered channel as a semaphore); ms, and "sleep_peak_rss" (VmHWM, bytes)
//	sleep_raw  the same with no cap and a WaitGroup; ms and "sleep_raw_peak_rss"
//
// -workload is the comparison suite (suite.go; bench/compare/compare.py): ONE repetition of ONE
// workload per process, at the size given, printed as one JSON line in the C++ workers' format
// (bench/compare/common.hpp), so that each run's peak RSS is its own:
//
//	{"system":"Go","workload":W,"n":N,"procs":P,"value":X,"unit":U,"check":...,
//	 "maxrss_kib":K,"note":...,"extra":{...}}
//
//	spawn, skynet, pingpong   as above, with n tasks / leaves / round trips
//	yield     gosched with n switches in all
//	parked    n goroutines parked, 5 ms to settle; B/task
//	sleep     n sleepers of sleep-ms each, at most cap at once; ms
//	fib       fib(fib), one branch of every fork a new goroutine, sequential at or below
//	          cutoff; ms (after one untimed run), next to the sequential time
//
// A wrong result (skynet sum, fib value, lost tasks) prints a message on stderr and exits 2;
// bad arguments exit 64. Diagnostics go to stderr; stdout carries nothing but JSON lines.
// The HTTP and echo servers of the server benchmarks are in servers/ (same module).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
)

var (
	flagBench    = flag.String("bench", "", "micro comparison: a workload name, or all")
	flagReps     = flag.Int("reps", defaultReps, "micro: repetitions per workload (parked, sleep and sleep_raw default to 1 unless given)")
	flagParked   = flag.Int("parked", 1_000_000, "micro: number of goroutines parked by the parked workload")
	flagChildRep = flag.Int("child-rep", -1, "internal: run one repetition of -bench in this process and label it with this index")
	flagWorkload = flag.String("workload", "", "suite: spawn, skynet, pingpong, yield, parked, sleep or fib")
	flagN        = flag.Int64("n", 1_000_000, "suite: tasks / leaves / round trips / switches")
	flagProcs    = flag.Int("procs", 0, "GOMAXPROCS (0: the Go default, the number of CPUs)")
	flagCap      = flag.Int("cap", 50_000, "suite sleep: concurrency cap")
	flagSleepMs  = flag.Int("sleep-ms", 10, "suite sleep: milliseconds each task sleeps")
	flagFib      = flag.Int("fib", 32, "suite fib: argument")
	flagWarm     = flag.Int("warm", 0, "suite spawn and skynet: repetitions after the first, in the same process (extra warm_best: the best of them)")
	flagCutoff   = flag.Int("cutoff", 20, "suite fib: sequential at or below this")
	// Accepted for symmetry with the C++ workers, unused.
	_ = flag.Int64("thread-cap", 0, "suite: unused (the std::thread worker's cap)")
)

func fail(format string, args ...interface{}) {
	out.Flush()
	fmt.Fprintf(os.Stderr, "colonybench: "+format+"\n", args...)
	os.Exit(2)
}

func usage(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "colonybench: "+format+"\n", args...)
	flag.Usage()
	os.Exit(64)
}

func main() {
	flag.Parse()
	if flag.NArg() != 0 {
		usage("unexpected arguments: %v", flag.Args())
	}
	if (*flagBench == "") == (*flagWorkload == "") {
		usage("give exactly one of -bench (micro comparison) and -workload (suite)")
	}
	if *flagProcs > 0 {
		runtime.GOMAXPROCS(*flagProcs)
	}
	if *flagWorkload != "" {
		suiteMain(*flagWorkload)
		return
	}
	repsGiven := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "reps" {
			repsGiven = true
		}
	})
	microMain(*flagBench, repsGiven)
}
