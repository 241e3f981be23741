// Command colonybench runs the Go peer-reference workloads that colony's own
// benchmarks are compared against. It uses only the Go standard library.
//
// Usage:
//
//	colonybench [-bench NAME] [-reps N] [-parked N]
//
// Without -bench every workload runs, in the order listed below. Output is
// one JSON object per line on stdout, one per repetition:
//
//	{"system":"go","bench":NAME,"rep":i,"value":X,"unit":U,"procs":P}
//
// followed, per record name, by a summary line with "rep":"median". "procs"
// is the GOMAXPROCS in effect while the workload ran (1 for gosched).
// Diagnostics go to stderr; stdout carries nothing but JSON lines.
//
// Workloads (definitions shared with colony's C++ benchmarks):
//
//	skynet     1,000,000 leaves, 10-way tree of goroutines; every node sends
//	           its sum to its parent on a channel created by the parent with
//	           a buffer of 10 (one slot per child, as in the classic skynet).
//	           The result must be 499999500000, otherwise exit status 1.
//	           Unit ms: wall time of one full tree.
//	spawn      1,000,000 `go func(){ wg.Done() }()` from one goroutine, then
//	           wg.Wait(). Unit ns/op: total wall time / 1e6.
//	gosched    GOMAXPROCS(1) for the duration (restored afterwards), two
//	           goroutines each calling runtime.Gosched() 1,000,000 times.
//	           Unit ns/op: wall time / 2,000,000 yields.
//	pingpong   two goroutines exchanging a value over two unbuffered channels,
//	           1,000,000 round trips, default GOMAXPROCS. Unit ns/op per
//	           round trip.
//	parked     N goroutines (-parked, default 1,000,000) each blocked receiving
//	           from one shared channel. VmRSS is read before spawning and once
//	           all N have started (a WaitGroup tells); record "parked" is
//	           (rss_after-rss_before)/N in bytes/op, record "parked_time" the
//	           spawn-to-all-started time in ms. Then the channel is closed
//	           and all goroutines are waited for.
//	sleep      the scenario of the ants benchmark (BenchmarkSemaphore):
//	           1,000,000 tasks, each time.Sleep(10ms); the spawning loop
//	           acquires a slot of a buffered channel of capacity 50,000 used
//	           as a semaphore before starting one goroutine per task, which
//	           releases the slot when done. Unit ms. Record "sleep_peak_rss"
//	           is VmHWM in bytes.
//	sleep_raw  1,000,000 goroutines each time.Sleep(10ms), a WaitGroup, no
//	           cap. Unit ms, plus "sleep_raw_peak_rss" (VmHWM, bytes).
//
// Process isolation: parked, sleep and sleep_raw measure process memory
// (VmRSS deltas, VmHWM which never decreases, and Go keeps the stacks and g
// structures of dead goroutines for reuse), so each of their repetitions is
// run in a fresh child process (this binary re-executed with an internal
// flag). Their results are therefore valid even when several workloads run
// from one invocation; bench/go/run.sh additionally runs each workload in its
// own process. Their default -reps is 1 (they are slow and heavy) unless
// -reps is given explicitly; every other workload defaults to 5.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	skynetLeaves   = 1_000_000
	skynetExpected = int64(499999500000)
	spawnCount     = 1_000_000
	goschedYields  = 1_000_000 // per goroutine
	pingpongTrips  = 1_000_000
	sleepTasks     = 1_000_000
	sleepCap       = 50_000
	sleepDuration  = 10 * time.Millisecond
	defaultReps    = 5
	heavyReps      = 1
)

type record struct {
	System string      `json:"system"`
	Bench  string      `json:"bench"`
	Rep    interface{} `json:"rep"`
	Value  float64     `json:"value"`
	Unit   string      `json:"unit"`
	Procs  int         `json:"procs"`
}

type workload struct {
	name     string
	isolated bool // run every repetition in a fresh child process
	run      func() []record
}

var workloads = []workload{
	{"skynet", false, benchSkynet},
	{"spawn", false, benchSpawn},
	{"gosched", false, benchGosched},
	{"pingpong", false, benchPingpong},
	{"select", false, benchSelect},
	{"selectdyn2", false, func() []record { return benchSelectDynamic("selectdyn2", 2) }},
	{"selectdyn100", false, func() []record { return benchSelectDynamic("selectdyn100", 100) }},
	{"chanbuf1", false, func() []record { return benchChanBuffered("chanbuf1", 1) }},
	{"chanbuf4", false, func() []record { return benchChanBuffered("chanbuf4", 4) }},
	{"mutex", false, benchMutex},
	{"wgfanin", false, benchWaitGroupFanIn},
	{"parked", true, benchParked},
	{"sleep", true, benchSleep},
	{"sleep_raw", true, benchSleepRaw},
}

var (
	flagBench  = flag.String("bench", "", "workload to run (skynet, spawn, gosched, pingpong, select, selectdyn2, selectdyn100, chanbuf1, chanbuf4, mutex, wgfanin, parked, sleep, sleep_raw); all when omitted")
	flagReps   = flag.Int("reps", defaultReps, "repetitions per workload (parked, sleep and sleep_raw default to 1 unless given)")
	flagParked = flag.Int("parked", 1_000_000, "number of goroutines parked by the parked workload")
	// Internal: set when this process is the child running one isolated
	// repetition; the value is the repetition index to report.
	flagChildRep = flag.Int("child-rep", -1, "internal: run one repetition of -bench in this process and label it with this index")
)

var out = bufio.NewWriter(os.Stdout)

func emit(r record) {
	b, err := json.Marshal(r)
	if err != nil {
		fatalf("json: %v", err)
	}
	out.Write(b)
	out.WriteByte('\n')
	out.Flush()
}

func fatalf(format string, args ...interface{}) {
	out.Flush()
	fmt.Fprintf(os.Stderr, "colonybench: "+format+"\n", args...)
	os.Exit(1)
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func ms(d time.Duration) float64 { return round3(float64(d.Nanoseconds()) / 1e6) }

func nsPer(d time.Duration, n int) float64 { return round3(float64(d.Nanoseconds()) / float64(n)) }

func rec(bench string, value float64, unit string, procs int) record {
	return record{System: "go", Bench: bench, Value: value, Unit: unit, Procs: procs}
}

// ---------------------------------------------------------------- skynet

func skynet(parent chan<- int64, num, size int64) {
	if size == 1 {
		parent <- num
		return
	}
	children := make(chan int64, 10)
	size /= 10
	for i := int64(0); i < 10; i++ {
		go skynet(children, num+i*size, size)
	}
	var sum int64
	for i := 0; i < 10; i++ {
		sum += <-children
	}
	parent <- sum
}

func benchSkynet() []record {
	root := make(chan int64, 1)
	start := time.Now()
	go skynet(root, 0, skynetLeaves)
	sum := <-root
	elapsed := time.Since(start)
	if sum != skynetExpected {
		fatalf("skynet: sum %d, want %d", sum, skynetExpected)
	}
	return []record{rec("skynet", ms(elapsed), "ms", runtime.GOMAXPROCS(0))}
}

// ---------------------------------------------------------------- spawn

func benchSpawn() []record {
	var wg sync.WaitGroup
	wg.Add(spawnCount)
	start := time.Now()
	for i := 0; i < spawnCount; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
	elapsed := time.Since(start)
	return []record{rec("spawn", nsPer(elapsed, spawnCount), "ns/op", runtime.GOMAXPROCS(0))}
}

// ---------------------------------------------------------------- gosched

func benchGosched() []record {
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
			for i := 0; i < goschedYields; i++ {
				runtime.Gosched()
			}
			done.Done()
		}()
	}
	ready.Wait()
	start := time.Now()
	close(gate)
	done.Wait()
	elapsed := time.Since(start)
	return []record{rec("gosched", nsPer(elapsed, 2*goschedYields), "ns/op", runtime.GOMAXPROCS(0))}
}

// ---------------------------------------------------------------- pingpong

func benchPingpong() []record {
	ping := make(chan int)
	pong := make(chan int)
	finished := make(chan struct{})
	go func() {
		for v := range ping {
			pong <- v + 1
		}
		close(finished)
	}()
	start := time.Now()
	for i := 0; i < pingpongTrips; i++ {
		ping <- i
		if v := <-pong; v != i+1 {
			fatalf("pingpong: got %d, want %d", v, i+1)
		}
	}
	elapsed := time.Since(start)
	close(ping)
	<-finished
	return []record{rec("pingpong", nsPer(elapsed, pingpongTrips), "ns/op", runtime.GOMAXPROCS(0))}
}

// benchSelect: Go's BenchmarkSelectUncontended on one goroutine: two channels with one slot,
// one holding a value; each select takes it and puts one into the other. ns per select.
func benchSelect() []record {
	const ops = 2_000_000
	a := make(chan int, 1)
	b := make(chan int, 1)
	a <- 0
	start := time.Now()
	for i := 0; i < ops; i++ {
		select {
		case <-a:
			b <- 0
		case <-b:
			a <- 0
		}
	}
	elapsed := time.Since(start)
	return []record{rec("select", nsPer(elapsed, ops), "ns/op", runtime.GOMAXPROCS(0))}
}

// benchSelectDynamic: the same over n channels with reflect.Select (a run-time set of cases):
// one channel holds a value; the select takes it and puts one into the next. ns per select.
func benchSelectDynamic(name string, n int) []record {
	ops := 2_000_000 / n
	if ops < 20_000 {
		ops = 20_000
	}
	chans := make([]chan int, n)
	cases := make([]reflect.SelectCase, n)
	for i := range chans {
		chans[i] = make(chan int, 1)
		cases[i] = reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(chans[i])}
	}
	chans[0] <- 0
	start := time.Now()
	for i := 0; i < ops; i++ {
		chosen, _, ok := reflect.Select(cases)
		if !ok {
			fatalf("%s: channel %d closed", name, chosen)
		}
		chans[(chosen+1)%n] <- 0
	}
	elapsed := time.Since(start)
	return []record{rec(name, nsPer(elapsed, ops), "ns/op", runtime.GOMAXPROCS(0))}
}

// ---------------------------------------------------------------- memory helpers

// procStatusBytes returns a "kB" field of /proc/self/status (VmRSS, VmHWM) in bytes.
// benchChanBuffered: `producers` goroutines send 1M values in all on a channel with 128 slots;
// one receiver sums them. ns per value.
func benchChanBuffered(name string, producers int) []record {
	const values = 1_000_000
	ch := make(chan int, 128)
	var wg sync.WaitGroup
	start := time.Now()
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := p; i < values; i += producers {
				ch <- i
			}
		}(p)
	}
	go func() { wg.Wait(); close(ch) }()
	sum := 0
	for v := range ch {
		sum += v
	}
	elapsed := time.Since(start)
	if sum != values*(values-1)/2 {
		fatalf("%s: lost values", name)
	}
	return []record{rec(name, nsPer(elapsed, values), "ns/op", runtime.GOMAXPROCS(0))}
}

// benchMutex: 8 goroutines each taking a sync.Mutex 100k times. ns per lock+unlock.
func benchMutex() []record {
	const goroutines, each = 8, 100_000
	var mu sync.Mutex
	var wg sync.WaitGroup
	counter := 0
	start := time.Now()
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if counter != goroutines*each {
		fatalf("mutex: lost increments")
	}
	return []record{rec("mutex", nsPer(elapsed, goroutines*each), "ns/op", runtime.GOMAXPROCS(0))}
}

// benchWaitGroupFanIn: 100k goroutines each calling Done on one WaitGroup. ns per goroutine.
func benchWaitGroupFanIn() []record {
	const n = 100_000
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go wg.Done()
	}
	wg.Wait()
	return []record{rec("wgfanin", nsPer(time.Since(start), n), "ns/op", runtime.GOMAXPROCS(0))}
}

func procStatusBytes(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fatalf("reading /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, field+":") {
			continue
		}
		f := strings.Fields(line[len(field)+1:])
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			break
		}
		return kb * 1024
	}
	fatalf("no usable %s line in /proc/self/status", field)
	return 0
}

// ---------------------------------------------------------------- parked

func benchParked() []record {
	n := *flagParked
	if n <= 0 {
		fatalf("parked: -parked must be positive")
	}
	procs := runtime.GOMAXPROCS(0)
	runtime.GC()
	before := procStatusBytes("VmRSS")

	block := make(chan struct{})
	var started, exited sync.WaitGroup
	started.Add(n)
	exited.Add(n)
	start := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			<-block
			exited.Done()
		}()
	}
	started.Wait()
	elapsed := time.Since(start)
	after := procStatusBytes("VmRSS")

	close(block)
	exited.Wait()
	return []record{
		rec("parked", round3(float64(after-before)/float64(n)), "bytes/op", procs),
		rec("parked_time", ms(elapsed), "ms", procs),
	}
}

// ---------------------------------------------------------------- sleep

func benchSleep() []record {
	procs := runtime.GOMAXPROCS(0)
	sema := make(chan struct{}, sleepCap)
	var wg sync.WaitGroup
	wg.Add(sleepTasks)
	start := time.Now()
	for i := 0; i < sleepTasks; i++ {
		sema <- struct{}{}
		go func() {
			time.Sleep(sleepDuration)
			<-sema
			wg.Done()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	return []record{
		rec("sleep", ms(elapsed), "ms", procs),
		rec("sleep_peak_rss", float64(procStatusBytes("VmHWM")), "bytes", procs),
	}
}

func benchSleepRaw() []record {
	procs := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	wg.Add(sleepTasks)
	start := time.Now()
	for i := 0; i < sleepTasks; i++ {
		go func() {
			time.Sleep(sleepDuration)
			wg.Done()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	return []record{
		rec("sleep_raw", ms(elapsed), "ms", procs),
		rec("sleep_raw_peak_rss", float64(procStatusBytes("VmHWM")), "bytes", procs),
	}
}

// ---------------------------------------------------------------- driver

// runChild runs one repetition of an isolated workload in a fresh process
// and returns its records (already re-emitted on stdout).
func runChild(w workload, rep int) []record {
	exe, err := os.Executable()
	if err != nil {
		fatalf("%s: cannot locate own executable: %v", w.name, err)
	}
	cmd := exec.Command(exe, "-bench", w.name, "-child-rep", strconv.Itoa(rep),
		"-parked", strconv.Itoa(*flagParked))
	cmd.Stderr = os.Stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		fatalf("%s: %v", w.name, err)
	}
	if err := cmd.Start(); err != nil {
		fatalf("%s: starting child: %v", w.name, err)
	}
	var recs []record
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			fatalf("%s: bad child output %q: %v", w.name, sc.Text(), err)
		}
		recs = append(recs, r)
		emit(r)
	}
	if err := cmd.Wait(); err != nil {
		fatalf("%s: child failed: %v", w.name, err)
	}
	return recs
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return round3((s[n/2-1] + s[n/2]) / 2)
}

func runWorkload(w workload, reps int) {
	type series struct {
		unit   string
		procs  int
		values []float64
	}
	byName := map[string]*series{}
	var order []string
	for i := 0; i < reps; i++ {
		var recs []record
		if w.isolated {
			recs = runChild(w, i)
		} else {
			runtime.GC()
			recs = w.run()
			for j := range recs {
				recs[j].Rep = i
				emit(recs[j])
			}
		}
		for _, r := range recs {
			s, ok := byName[r.Bench]
			if !ok {
				s = &series{unit: r.Unit, procs: r.Procs}
				byName[r.Bench] = s
				order = append(order, r.Bench)
			}
			s.values = append(s.values, r.Value)
		}
	}
	for _, name := range order {
		s := byName[name]
		emit(record{System: "go", Bench: name, Rep: "median", Value: median(s.values), Unit: s.unit, Procs: s.procs})
	}
}

func main() {
	flag.Parse()
	if flag.NArg() != 0 {
		fatalf("unexpected arguments: %v", flag.Args())
	}
	repsGiven := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "reps" {
			repsGiven = true
		}
	})
	if *flagReps < 1 {
		fatalf("-reps must be at least 1")
	}

	var selected []workload
	for _, w := range workloads {
		if *flagBench == "" || *flagBench == w.name {
			selected = append(selected, w)
		}
	}
	if len(selected) == 0 {
		fatalf("unknown -bench %q", *flagBench)
	}

	if *flagChildRep >= 0 {
		// Child process: exactly one repetition of one workload.
		if *flagBench == "" {
			fatalf("-child-rep needs -bench")
		}
		recs := selected[0].run()
		for _, r := range recs {
			r.Rep = *flagChildRep
			emit(r)
		}
		return
	}

	for _, w := range selected {
		reps := *flagReps
		if w.isolated && !repsGiven {
			reps = heavyReps
		}
		runWorkload(w, reps)
	}
	out.Flush()
}
