package main

// The micro comparison (-bench): the Go peers of bench/micro's Google Benchmark figures, with
// fixed sizes, several repetitions and a median per record; compare.py's micro table reads them.

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"
)

const (
	microLeaves   = 1_000_000 // skynet
	microSpawn    = 1_000_000
	microYields   = 1_000_000 // per goroutine
	microTrips    = 1_000_000 // pingpong
	microSleeps   = 1_000_000
	microSleepCap = 50_000
	microSleepFor = 10 * time.Millisecond
	defaultReps   = 5
	heavyReps     = 1
)

type record struct {
	System string      `json:"system"`
	Bench  string      `json:"bench"`
	Rep    interface{} `json:"rep"`
	Value  float64     `json:"value"`
	Unit   string      `json:"unit"`
	Procs  int         `json:"procs"`
}

type microWorkload struct {
	name     string
	isolated bool // run every repetition in a fresh child process
	run      func() []record
}

var microWorkloads = []microWorkload{
	{"skynet", false, microSkynet},
	{"spawn", false, microSpawnN},
	{"gosched", false, microGosched},
	{"pingpong", false, microPingpong},
	{"select", false, microSelect},
	{"selectdyn2", false, func() []record { return microSelectDynamic("selectdyn2", 2) }},
	{"selectdyn100", false, func() []record { return microSelectDynamic("selectdyn100", 100) }},
	{"chanbuf1", false, func() []record { return microChanBuffered("chanbuf1", 1) }},
	{"chanbuf4", false, func() []record { return microChanBuffered("chanbuf4", 4) }},
	{"mutex", false, microMutex},
	{"wgfanin", false, microWaitGroupFanIn},
	{"parked", true, microParked},
	{"sleep", true, func() []record { return microSleep("sleep", microSleepCap) }},
	{"sleep_raw", true, func() []record { return microSleep("sleep_raw", 0) }},
}

var out = bufio.NewWriter(os.Stdout)

func emit(r record) {
	b, err := json.Marshal(r)
	if err != nil {
		fail("json: %v", err)
	}
	out.Write(b)
	out.WriteByte('\n')
	out.Flush()
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func ms(d time.Duration) float64 { return round3(float64(d.Nanoseconds()) / 1e6) }

func nsPer(d time.Duration, n int) float64 { return round3(float64(d.Nanoseconds()) / float64(n)) }

func rec(bench string, value float64, unit string, procs int) record {
	return record{System: "go", Bench: bench, Value: value, Unit: unit, Procs: procs}
}

func microSkynet() []record {
	elapsed, _ := skynetTree(microLeaves)
	return []record{rec("skynet", ms(elapsed), "ms", runtime.GOMAXPROCS(0))}
}

func microSpawnN() []record {
	return []record{rec("spawn", nsPer(spawnN(microSpawn), microSpawn), "ns/op", runtime.GOMAXPROCS(0))}
}

func microGosched() []record {
	elapsed := goschedPair(microYields)
	return []record{rec("gosched", nsPer(elapsed, 2*microYields), "ns/op", 1)}
}

func microPingpong() []record {
	return []record{rec("pingpong", nsPer(pingpongTrips(microTrips), microTrips), "ns/op",
		runtime.GOMAXPROCS(0))}
}

// microSelect: Go's BenchmarkSelectUncontended on one goroutine: two channels with one slot,
// one holding a value; each select takes it and puts one into the other. ns per select.
func microSelect() []record {
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

// microSelectDynamic: the same over n channels with reflect.Select (a run-time set of cases):
// one channel holds a value; the select takes it and puts one into the next. ns per select.
func microSelectDynamic(name string, n int) []record {
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
			fail("%s: channel %d closed", name, chosen)
		}
		chans[(chosen+1)%n] <- 0
	}
	elapsed := time.Since(start)
	return []record{rec(name, nsPer(elapsed, ops), "ns/op", runtime.GOMAXPROCS(0))}
}

// microChanBuffered: `producers` goroutines send 1M values in all on a channel with 128 slots;
// one receiver sums them. ns per value.
func microChanBuffered(name string, producers int) []record {
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
		fail("%s: lost values", name)
	}
	return []record{rec(name, nsPer(elapsed, values), "ns/op", runtime.GOMAXPROCS(0))}
}

// microMutex: 8 goroutines each taking a sync.Mutex 100k times. ns per lock+unlock.
func microMutex() []record {
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
		fail("mutex: lost increments")
	}
	return []record{rec("mutex", nsPer(elapsed, goroutines*each), "ns/op", runtime.GOMAXPROCS(0))}
}

// microWaitGroupFanIn: 100k goroutines each calling Done on one WaitGroup. ns per goroutine.
func microWaitGroupFanIn() []record {
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

func microParked() []record {
	n := *flagParked
	if n <= 0 {
		fail("parked: -parked must be positive")
	}
	procs := runtime.GOMAXPROCS(0)
	r := parkedN(int64(n), 0)
	return []record{
		rec("parked", round3(float64(r.rssParked-r.rssBefore)*1024/float64(n)), "bytes/op", procs),
		rec("parked_time", ms(r.started), "ms", procs),
	}
}

// microSleep: 1M x time.Sleep(10ms), at most `cap` at once (0: no cap); ms, and the peak RSS.
func microSleep(name string, cap int) []record {
	procs := runtime.GOMAXPROCS(0)
	elapsed := sleepCapped(microSleeps, cap, microSleepFor)
	hwm := statusKiB("VmHWM")
	if hwm < 0 {
		fail("%s: no usable VmHWM line in /proc/self/status", name)
	}
	return []record{
		rec(name, ms(elapsed), "ms", procs),
		rec(name+"_peak_rss", float64(hwm*1024), "bytes", procs),
	}
}

// runChild runs one repetition of an isolated workload in a fresh process and returns its
// records (already re-emitted on stdout).
func runChild(w microWorkload, rep int) []record {
	exe, err := os.Executable()
	if err != nil {
		fail("%s: cannot locate own executable: %v", w.name, err)
	}
	cmd := exec.Command(exe, "-bench", w.name, "-child-rep", strconv.Itoa(rep),
		"-parked", strconv.Itoa(*flagParked), "-procs", strconv.Itoa(*flagProcs))
	cmd.Stderr = os.Stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		fail("%s: %v", w.name, err)
	}
	if err := cmd.Start(); err != nil {
		fail("%s: starting child: %v", w.name, err)
	}
	var recs []record
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			fail("%s: bad child output %q: %v", w.name, sc.Text(), err)
		}
		recs = append(recs, r)
		emit(r)
	}
	if err := cmd.Wait(); err != nil {
		fail("%s: child failed: %v", w.name, err)
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

func runMicroWorkload(w microWorkload, reps int) {
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
		emit(record{System: "go", Bench: name, Rep: "median", Value: median(s.values), Unit: s.unit,
			Procs: s.procs})
	}
}

// microMain: -bench NAME (or "all") [-reps N] [-parked N] [-child-rep I].
func microMain(bench string, repsGiven bool) {
	if *flagReps < 1 {
		fail("-reps must be at least 1")
	}
	var selected []microWorkload
	for _, w := range microWorkloads {
		if bench == "all" || bench == w.name {
			selected = append(selected, w)
		}
	}
	if len(selected) == 0 {
		usage("unknown -bench %q", bench)
	}
	if *flagChildRep >= 0 {
		// Child process: exactly one repetition of one workload.
		if bench == "all" {
			fail("-child-rep needs one -bench")
		}
		for _, r := range selected[0].run() {
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
		runMicroWorkload(w, reps)
	}
	out.Flush()
}
