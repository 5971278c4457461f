// Command spawnfloor measures what this machine charges to start and reap processes with
// nothing else running: it spawns -n copies of a command, -par at a time, and prints the
// rate and the CPU per spawn in the children and in itself. The cluster kernel's launch
// benchmark cannot go faster than this floor allows.
//
//	go run ./scripts/bench/spawnfloor -- sh -c true
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

func main() {
	n := flag.Int("n", 4000, "processes to spawn")
	par := flag.Int("par", 4, "spawned at a time")
	flag.Parse()
	argv := flag.Args()
	if len(argv) == 0 || *n < 1 || *par < 1 {
		fmt.Fprintln(os.Stderr, "usage: spawnfloor [-n N] [-par P] -- command [args...]")
		os.Exit(2)
	}
	start := time.Now()
	errs := make(chan error, *par)
	var wg sync.WaitGroup
	for w := range *par {
		wg.Go(func() {
			for i := w; i < *n; i += *par {
				if err := exec.Command(argv[0], argv[1:]...).Run(); err != nil {
					errs <- fmt.Errorf("spawn %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	select {
	case err := <-errs:
		fmt.Fprintln(os.Stderr, "spawnfloor:", err)
		os.Exit(1)
	default:
	}
	per := func(who int) time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(who, &ru)
		return time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) / time.Duration(*n)
	}
	fmt.Printf("%q: %.0f spawns/s; CPU per spawn: %v in the child, %v in the parent\n",
		argv, float64(*n)/elapsed.Seconds(), per(syscall.RUSAGE_CHILDREN), per(syscall.RUSAGE_SELF))
}
