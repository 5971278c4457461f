package alloc

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// The benchmarks reproduce Mesos's published allocator benchmark: one allocation cycle
// over 10,000 agents and 1,000 frameworks in 10 roles took Mesos 1.06 s.
const (
	benchAgents     = 10_000
	benchFrameworks = 1_000
	benchRoles      = 10
	benchAgent      = "cpus:8;mem:32768;disk:100000;ports:[31000-32000]"
)

// benchCluster builds the cluster; every agent is free.
func benchCluster(b *testing.B) *Allocator {
	b.Helper()
	a := New(Config{MinAllocatable: DefaultConfig().MinAllocatable, Seed: 1})
	total := mustParse(b, benchAgent)
	for i := range benchAgents {
		a.AddAgent(benchAgentID(i), "host", total, nil)
	}
	for i := range benchFrameworks {
		a.AddFramework(benchFrameworkID(i), []string{benchRole(i)}, nil, true)
	}
	return a
}

func benchAgentID(i int) string     { return fmt.Sprintf("agent-%05d", i) }
func benchFrameworkID(i int) string { return fmt.Sprintf("framework-%04d", i) }
func benchRole(i int) string        { return fmt.Sprintf("role-%d", i%benchRoles) }

// benchCycles times full cycles in which every agent is free and gets allocated, undoing
// each cycle's allocations outside the timer.
func benchCycles(b *testing.B, a *Allocator) {
	b.Helper()
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		allocs := a.Allocate(now)
		b.StopTimer()
		if len(allocs) != benchAgents {
			b.Fatalf("%d allocations, want %d", len(allocs), benchAgents)
		}
		for _, al := range allocs {
			a.Recover(al.FrameworkID, al.AgentID, al.Role, al.Resources, 0)
		}
		b.StartTimer()
	}
}

func BenchmarkAllocationCycle(b *testing.B) {
	benchCycles(b, benchCluster(b))
}

// BenchmarkAllocationCycleAllAllocated times a cycle after one that allocated everything.
func BenchmarkAllocationCycleAllAllocated(b *testing.B) {
	a := benchCluster(b)
	now := time.Now()
	if n := len(a.Allocate(now)); n != benchAgents {
		b.Fatalf("%d allocations, want %d", n, benchAgents)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if n := len(a.Allocate(now)); n != 0 {
			b.Fatalf("%d allocations, want none", n)
		}
	}
}

// BenchmarkAllocationCycleHalfFiltered times full cycles while every other framework has
// declined every agent with a filter. Those frameworks keep the lowest shares, so each
// agent first passes 50 filtered frameworks in each role.
func BenchmarkAllocationCycleHalfFiltered(b *testing.B) {
	if halfFiltered == nil {
		halfFiltered = benchCluster(b)
		total := mustParse(b, benchAgent)
		agents := make([]string, benchAgents)
		for i := range agents {
			agents[i] = benchAgentID(i)
		}
		for f := 0; f < benchFrameworks; f += 2 {
			id, role := benchFrameworkID(f), benchRole(f)
			for _, agent := range agents {
				halfFiltered.AddUsed(id, agent, role, total)
				halfFiltered.Recover(id, agent, role, total, time.Hour)
			}
		}
		runtime.GC() // collect the setup's garbage now rather than during the timed cycles
		// The first cycle looks at each of the 5,000,000 filters once; later ones reuse
		// the answers while agents' free resources stay the same.
		start := time.Now()
		allocs := halfFiltered.Allocate(time.Now())
		b.Logf("first cycle with %d filters: %v", benchAgents*benchFrameworks/2, time.Since(start))
		for _, al := range allocs {
			halfFiltered.Recover(al.FrameworkID, al.AgentID, al.Role, al.Resources, 0)
		}
	}
	benchCycles(b, halfFiltered)
}

// halfFiltered is BenchmarkAllocationCycleHalfFiltered's cluster, built once because that
// takes seconds and the benchmark function runs several times.
var halfFiltered *Allocator
