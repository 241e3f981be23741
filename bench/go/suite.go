package main

// The comparison suite (-workload): one repetition of one workload per process, with the
// sizes bench/compare/compare.py passes, printed as one JSON line in the format of the C++
// workers (bench/compare/common.hpp).

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"time"
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

func perOp(d time.Duration, ops int64, check string) result {
	return result{Value: float64(d.Nanoseconds()) / float64(ops), Unit: "ns/op", Check: check,
		Extra: map[string]float64{"total_ms": float64(d.Nanoseconds()) / 1e6}}
}

func inMs(d time.Duration, check string) result {
	return result{Value: float64(d.Nanoseconds()) / 1e6, Unit: "ms", Check: check}
}

func suiteParked(n int64) result {
	r := parkedN(n, 5*time.Millisecond)
	return result{Value: float64(r.rssParked-r.rssBefore) * 1024 / float64(n), Unit: "B/task",
		Check: fmt.Sprintf("%d woken", n),
		Extra: map[string]float64{"rss_before_kib": float64(r.rssBefore),
			"rss_parked_kib": float64(r.rssParked), "tasks": float64(n),
			"park_wake_ms": float64(r.total.Nanoseconds()) / 1e6}}
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

// suiteFib: fib(n), one branch of every fork in a new goroutine (its result over a channel),
// the other inline, sequential at or below cutoff; after one untimed parallel run, as the C++
// workers do, next to the sequential time.
func suiteFib(n, cutoff int) result {
	var want, b int64 = 0, 1
	for i := 0; i < n; i++ {
		want, b = b, want+b
	}
	pfib(n, cutoff) // untimed warm-up
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

// warmBest: with -warm K, runs the workload K more times in this process after the first
// (cold) repetition and records the lowest value as extra "warm_best" (same unit), so that the
// table shows a first run and a warm one side by side (bench/compare/common.hpp, warm_best).
func warmBest(r *result, again func() float64) {
	if *flagWarm <= 0 {
		return
	}
	best := again()
	for k := 1; k < *flagWarm; k++ {
		if v := again(); v < best {
			best = v
		}
	}
	if r.Extra == nil {
		r.Extra = map[string]float64{}
	}
	r.Extra["warm_best"] = best
	r.Extra["warm_reps"] = float64(*flagWarm)
}

// suiteMain: -workload W [-n N] [-cap C] [-sleep-ms MS] [-fib N] [-cutoff N] [-warm K].
func suiteMain(workload string) {
	if *flagN <= 0 || *flagCap <= 0 || *flagCutoff < 1 {
		usage("-n and -cap must be positive, -cutoff at least 1")
	}
	procs := runtime.GOMAXPROCS(0)
	n := *flagN
	var r result
	switch workload {
	case "spawn":
		r = perOp(spawnN(n), n, fmt.Sprintf("%d done", n))
		warmBest(&r, func() float64 { return float64(spawnN(n).Nanoseconds()) / float64(n) })
	case "skynet":
		for m := n; m > 1; m /= 10 {
			if m%10 != 0 {
				usage("skynet needs -n a power of 10")
			}
		}
		elapsed, sum := skynetTree(n)
		r = inMs(elapsed, fmt.Sprintf("sum=%d", sum))
		warmBest(&r, func() float64 {
			d, _ := skynetTree(n)
			return float64(d.Nanoseconds()) / 1e6
		})
	case "pingpong":
		r = perOp(pingpongTrips(n), n, fmt.Sprintf("%d round trips", n))
	case "yield":
		each := n / 2
		r = perOp(goschedPair(each), 2*each, fmt.Sprintf("%d yields", 2*each))
		r.Note = "GOMAXPROCS 1, runtime.Gosched"
	case "parked":
		r = suiteParked(n)
	case "sleep":
		d := time.Duration(*flagSleepMs) * time.Millisecond
		r = inMs(sleepCapped(n, *flagCap, d), fmt.Sprintf("%d slept", n))
	case "fib":
		r = suiteFib(*flagFib, *flagCutoff)
	default:
		usage("unknown -workload %q", workload)
	}
	r.System, r.Workload, r.N, r.Procs = "Go", workload, n, procs
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
