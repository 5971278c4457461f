package master_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/agent"
	"github.com/atoll/atoll/node/master"
)

// BenchmarkLaunchThroughput drives b.N short tasks (`true`) through the real HTTP scheduler
// API, a real master on Raft and a real agent with the process containerizer, as fast as
// offers allow, and reports sustained tasks/s and ACCEPT→TASK_RUNNING latency.
//
//	go test -run XXX -bench LaunchThroughput -benchtime 10000x ./node/master
func BenchmarkLaunchThroughput(b *testing.B) {
	sandboxes := b.TempDir()
	// 50 in flight shows latency under moderate load; 500 saturates the machine.
	for _, inFlight := range []int{50, 500} {
		b.Run(fmt.Sprint("inflight=", inFlight), func(b *testing.B) { benchmarkLaunches(b, inFlight, authOff, sandboxes, shellTrue) })
	}
}

// BenchmarkLaunchThroughputMinimalTask is BenchmarkLaunchThroughput with tasks that run
// the smallest program the kernel can run: a 129-byte static executable that exits at
// once, started without a shell. It separates Atoll's cost per task from that of the
// task's program: on a VM whose hypervisor traps the CPUID instruction, glibc's start-up
// probing of the CPU's caches alone takes about half of `sh -c true`. amd64 Linux only.
//
//	go test -run XXX -bench LaunchThroughputMinimalTask -benchtime 10000x ./node/master
func BenchmarkLaunchThroughputMinimalTask(b *testing.B) {
	exit0, workDirs := writeExitZero(b), b.TempDir()
	newTask := func(id string, cpus, mem float64) api.TaskInfo {
		task := shellTask(id, exit0, cpus, mem)
		task.Command.Shell = new(false)
		task.Command.Arguments = []string{exit0}
		return task
	}
	for _, inFlight := range []int{50, 500} {
		b.Run(fmt.Sprint("inflight=", inFlight), func(b *testing.B) { benchmarkLaunches(b, inFlight, authOff, workDirs, newTask) })
	}
}

// shellTrue is BenchmarkLaunchThroughput's task: `sh -c true`.
func shellTrue(id string, cpus, mem float64) api.TaskInfo { return shellTask(id, "true", cpus, mem) }

// writeExitZero writes an x86-64 Linux executable that calls exit(0) and nothing else
// (an ELF header, one loadable segment, 9 bytes of code), checks that it runs, and
// returns its path.
func writeExitZero(b *testing.B) string {
	b.Helper()
	if runtime.GOARCH != "amd64" {
		b.Skipf("the minimal task is an x86-64 executable; this is %s", runtime.GOARCH)
	}
	const base, headers = 0x400000, 64 + 56
	code := []byte{
		0xb8, 60, 0, 0, 0, // mov eax, 60 (exit)
		0x31, 0xff, // xor edi, edi
		0x0f, 0x05, // syscall
	}
	size := uint64(headers + len(code))
	le := binary.LittleEndian
	elf := []byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0} // 64-bit, little-endian, version 1
	elf = le.AppendUint16(elf, 2)                                          // e_type: executable
	elf = le.AppendUint16(elf, 0x3e)                                       // e_machine: x86-64
	elf = le.AppendUint32(elf, 1)                                          // e_version
	elf = le.AppendUint64(elf, base+headers)                               // e_entry: the code
	elf = le.AppendUint64(elf, 64)                                         // e_phoff
	elf = le.AppendUint64(elf, 0)                                          // e_shoff: no sections
	elf = le.AppendUint32(elf, 0)                                          // e_flags
	elf = le.AppendUint16(elf, 64)                                         // e_ehsize
	elf = le.AppendUint16(elf, 56)                                         // e_phentsize
	elf = le.AppendUint16(elf, 1)                                          // e_phnum
	elf = le.AppendUint16(elf, 0)                                          // e_shentsize
	elf = le.AppendUint16(elf, 0)                                          // e_shnum
	elf = le.AppendUint16(elf, 0)                                          // e_shstrndx
	elf = le.AppendUint32(elf, 1)                                          // p_type: PT_LOAD
	elf = le.AppendUint32(elf, 5)                                          // p_flags: read, execute
	elf = le.AppendUint64(elf, 0)                                          // p_offset
	elf = le.AppendUint64(elf, base)                                       // p_vaddr
	elf = le.AppendUint64(elf, base)                                       // p_paddr
	elf = le.AppendUint64(elf, size)                                       // p_filesz
	elf = le.AppendUint64(elf, size)                                       // p_memsz
	elf = le.AppendUint64(elf, 0x1000)                                     // p_align
	elf = append(elf, code...)
	path := filepath.Join(b.TempDir(), "exit0")
	if err := os.WriteFile(path, elf, 0o755); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command(path).CombinedOutput(); err != nil {
		b.Fatalf("the minimal task %s does not run: %v %s", path, err, out)
	}
	return path
}

// BenchmarkLaunchThroughputAuth is BenchmarkLaunchThroughput (50 in flight) without and
// with API tokens: the framework and the agent authenticate every call, and the writes
// are audited. The agent sends no token of its own yet, so in both runs it reaches the
// master through a loopback proxy that adds an agent token when there is one: the runs
// differ by the tokens alone.
//
//	go test -run XXX -bench LaunchThroughputAuth -benchtime 5000x ./node/master
func BenchmarkLaunchThroughputAuth(b *testing.B) {
	sandboxes := b.TempDir()
	for _, auth := range []authMode{authProxied, authOn} {
		b.Run("auth="+auth.String(), func(b *testing.B) { benchmarkLaunches(b, 50, auth, sandboxes, shellTrue) })
	}
}

// authMode is how a benchmark's clients reach the master.
type authMode int

const (
	// authOff: no tokens; the agent calls the master directly.
	authOff authMode = iota
	// authProxied: no tokens; the agent calls through a loopback proxy.
	authProxied
	// authOn: the master requires tokens; the agent's proxy adds one.
	authOn
)

func (a authMode) String() string {
	if a == authOn {
		return "on"
	}
	return "off"
}

// benchMaster starts a master for a benchmark, with authentication as mode says, and
// returns it with the clients' options for the framework and the agent's token.
func benchMaster(b *testing.B, mode authMode) (ts *master.TestServer, framework []api.ClientOption, agentToken string) {
	b.Helper()
	admins := make(chan string, 1)
	ts = master.NewTestServer(b, func(c *master.Config) {
		// Formatted and thrown away: what production pays for its log lines, the audit
		// log's included.
		c.Logger = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
		if mode == authOn {
			c.Auth = master.AuthConfig{Enabled: true, AdminToken: func(token string) { admins <- token }}
		}
	})
	if mode != authOn {
		return ts, nil, ""
	}
	admin := api.NewClient(ts.URL, api.WithToken(<-admins))
	create := func(role api.TokenRole) string {
		created, err := admin.CreateToken(context.Background(), api.CreateTokenRequest{Role: role, Principal: "bench"})
		if err != nil {
			b.Fatalf("create %s token: %v", role, err)
		}
		return created.Token
	}
	return ts, []api.ClientOption{api.WithToken(create(api.RoleFramework))}, create(api.RoleAgent)
}

// tokenProxy serves a reverse proxy to target that adds token to every request ("" adds
// none), and returns its URL.
func tokenProxy(b *testing.B, target, token string) string {
	b.Helper()
	return forwardingProxy(b, target, token, nil)
}

// benchmarkLaunches runs the agent's work directory in a new directory under workDirs,
// which the caller deletes once all its runs are over: on an ext4 without a journal (this
// VM's) every inode created within a minute or more of many being deleted costs a scan
// past the recently deleted ones (the kernel's recently_deleted), and deleting one run's
// 10,000 sandboxes before the next would charge that to the next run.
func benchmarkLaunches(b *testing.B, inFlight int, mode authMode, workDirs string, newTask func(id string, cpus, mem float64) api.TaskInfo) {
	ts, clientOpts, agentToken := benchMaster(b, mode)
	masters := ts.Masters
	if mode != authOff {
		proxied := tokenProxy(b, ts.URL, agentToken)
		masters = func() []string { return []string{proxied} }
	}
	workDir, err := os.MkdirTemp(workDirs, "agent")
	if err != nil {
		b.Fatal(err)
	}
	agent.TestAgent(b, masters, func(c *agent.Config) {
		c.WorkDir = workDir
		c.Resources = "cpus:64;mem:65536;disk:10000;ports:[31000-31100]"
		c.Logger = discardLogger()
		// Production resend timing: the tests' 200 ms would resend every update whose
		// acknowledgement is merely queued behind the load.
		c.UpdateRetryInitial, c.UpdateRetryMax = agent.DefaultConfig().UpdateRetryInitial, agent.DefaultConfig().UpdateRetryMax
	})
	info := frameworkInfo("bench")
	info.Principal = "bench"
	f := subscribe(b, ts.URL, info, clientOpts...)

	// Sustained load, not one burst: at most perAccept tasks per ACCEPT and inFlight tasks
	// launched but not yet ended.
	const cpus, mem = 0.01, 4.0
	const perAccept = 100
	var (
		mu       sync.Mutex
		accepted = map[string]time.Time{}
		ended    = map[string]bool{}
		latency  []time.Duration
		finished int
	)
	total := b.N
	done := make(chan struct{})
	b.ResetTimer()
	start, startCPU := time.Now(), processCPU(b)
	launched := 0
	go func() {
		for ev := range f.events {
			switch ev.Type {
			case api.EventUpdate:
				st := ev.Update.Status
				if len(st.UUID) > 0 {
					go func() { _ = f.stream.Acknowledge(f.ctx, st) }()
				}
				// Delivery is at-least-once: count each task's RUNNING and end once.
				mu.Lock()
				switch {
				case st.State == api.TaskRunning:
					if t0, ok := accepted[st.TaskID.Value]; ok {
						latency = append(latency, time.Since(t0))
						delete(accepted, st.TaskID.Value)
					}
				case st.State.Terminal() && !ended[st.TaskID.Value]:
					ended[st.TaskID.Value] = true
					finished++
					if finished == total {
						close(done)
					}
				}
				mu.Unlock()
			case api.EventOffers:
				for _, o := range ev.Offers.Offers {
					fit := int(min(scalarOf(o.Resources, "cpus")/cpus, scalarOf(o.Resources, "mem")/mem))
					mu.Lock()
					fit = min(fit, perAccept, inFlight-(launched-finished))
					mu.Unlock()
					var tasks []api.TaskInfo
					for i := 0; i < fit && launched < total; i++ {
						id := fmt.Sprintf("t%d", launched)
						launched++
						tasks = append(tasks, newTask(id, cpus, mem))
					}
					if len(tasks) == 0 {
						// Nothing to launch right now: a short filter, so the next
						// offer comes once tasks ended.
						go func() { _ = f.stream.Decline(f.ctx, []api.OfferID{o.ID}, refuse(0.005)) }()
						continue
					}
					now := time.Now()
					mu.Lock()
					for _, t := range tasks {
						accepted[t.TaskID.Value] = now
					}
					mu.Unlock()
					for i := range tasks {
						tasks[i].AgentID = o.AgentID
					}
					go func() {
						_ = f.stream.Accept(f.ctx, []api.OfferID{o.ID}, []api.OfferOperation{{
							Type: api.OperationLaunch, Launch: &api.LaunchOperation{TaskInfos: tasks}}}, refuse(0))
					}()
				}
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Minute):
		b.Fatalf("only %d of %d tasks finished in 10 minutes", finished, total)
	}
	elapsed, cpu := time.Since(start), processCPU(b)-startCPU
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(latency, func(i, j int) bool { return latency[i] < latency[j] })
	b.ReportMetric(float64(total)/elapsed.Seconds(), "tasks/s")
	// This process: master, agent and framework, not the tasks' own processes.
	b.ReportMetric(float64(cpu.Microseconds())/float64(total), "cpu-µs/task")
	if n := len(latency); n > 0 {
		b.ReportMetric(float64(latency[n/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(latency[n*99/100].Microseconds())/1000, "p99-ms")
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// BenchmarkLaunchesSimulated drives b.N launches through the scheduler API to 10
// simulated agents, which answer each LAUNCH with TASK_RUNNING at once: the master, Raft
// and the HTTP APIs alone, where the cost of authentication shows most. Each task is an
// ACCEPT share, an agent UPDATE share and an ACKNOWLEDGE; every call checks a token with
// auth=on.
//
//	go test -run XXX -bench LaunchesSimulated -benchtime 20000x ./node/master
func BenchmarkLaunchesSimulated(b *testing.B) {
	for _, mode := range []authMode{authOff, authOn} {
		b.Run("auth="+mode.String(), func(b *testing.B) { benchmarkSimulatedLaunches(b, mode) })
	}
}

func benchmarkSimulatedLaunches(b *testing.B, mode authMode) {
	ts, clientOpts, agentToken := benchMaster(b, mode)
	for i := range 10 {
		master.StartSimulatedAgentWithToken(b, ts.URL, agentToken, fmt.Sprintf("sim-%d", i), []api.Resource{
			{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 10000}},
			{Name: "mem", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 1 << 22}},
		})
	}
	info := frameworkInfo("bench")
	info.Principal = "bench"
	f := subscribe(b, ts.URL, info, clientOpts...)
	driveSimulatedLaunches(b, f)
}

// driveSimulatedLaunches launches b.N tasks through f as fast as offers come, at most
// 100 per ACCEPT, and reports tasks/s and CPU per task, as BenchmarkLaunchesSimulated.
func driveSimulatedLaunches(b *testing.B, f *framework) {
	const cpus, mem, perAccept = 0.01, 4.0, 100
	var (
		mu       sync.Mutex
		running  = map[string]bool{}
		launched int
	)
	total := b.N
	done := make(chan struct{})
	b.ResetTimer()
	start, startCPU := time.Now(), processCPU(b)
	go func() {
		for ev := range f.events {
			switch ev.Type {
			case api.EventUpdate:
				st := ev.Update.Status
				if len(st.UUID) > 0 {
					go func() { _ = f.stream.Acknowledge(f.ctx, st) }()
				}
				mu.Lock()
				if st.State == api.TaskRunning && !running[st.TaskID.Value] {
					running[st.TaskID.Value] = true
					if len(running) == total {
						close(done)
					}
				}
				mu.Unlock()
			case api.EventOffers:
				for _, o := range ev.Offers.Offers {
					var tasks []api.TaskInfo
					for len(tasks) < perAccept && launched < total {
						task := shellTask(fmt.Sprintf("t%d", launched), "true", cpus, mem)
						task.AgentID = o.AgentID
						tasks = append(tasks, task)
						launched++
					}
					if len(tasks) == 0 {
						go func() { _ = f.stream.Decline(f.ctx, []api.OfferID{o.ID}, refuse(60)) }()
						continue
					}
					go func() {
						err := f.stream.Accept(f.ctx, []api.OfferID{o.ID}, []api.OfferOperation{{
							Type: api.OperationLaunch, Launch: &api.LaunchOperation{TaskInfos: tasks}}}, refuse(0))
						if err != nil && f.ctx.Err() == nil {
							b.Errorf("accept %d tasks: %v", len(tasks), err)
						}
					}()
				}
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		mu.Lock()
		defer mu.Unlock()
		b.Fatalf("only %d of %d tasks running in 2 minutes", len(running), total)
	}
	elapsed, cpu := time.Since(start), processCPU(b)-startCPU
	b.StopTimer()
	b.ReportMetric(float64(total)/elapsed.Seconds(), "tasks/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(total), "cpu-µs/task")
}

// processCPU is the CPU time this process has used: the master, the framework and the
// agents of a benchmark together, a measure less at the mercy of other load on the
// machine than throughput.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
