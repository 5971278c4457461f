package isolate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/atoll/atoll/api"
)

// benchScript is what every benchmarked container runs: a task that stays up, so that
// the measured launch ends when it runs, not when it exits.
const benchScript = "exec sleep 1000"

// BenchmarkRuncLaunch measures the time from a launch request to the task running, one
// container at a time, for the runc containerizer and, for comparison, for Debian's runc
// command ("runc run -d") on a bundle with the same configuration: the same read-only
// view of the host, mounts, namespaces, capabilities, masked paths and cgroup limits.
// Killing and destroying each container is not measured.
func BenchmarkRuncLaunch(b *testing.B) {
	b.Run("atoll", func(b *testing.B) {
		r := newTestRunc(b, b.TempDir(), func(c *RuncConfig) {
			// b.Log output is always shown for benchmarks.
			c.Logger = slog.New(slog.DiscardHandler)
		})
		sandbox := b.TempDir()
		ctx := context.Background()
		n := 0
		var took []time.Duration
		defer func() { reportPercentiles(b, took) }()
		for b.Loop() {
			n++
			spec := LaunchSpec{
				ContainerID: "bench-" + strconv.Itoa(n),
				Sandbox:     sandbox,
				Command:     api.CommandInfo{Value: ptr(benchScript)},
				CPUs:        1,
				MemMB:       64,
			}
			start := time.Now()
			if _, err := r.Launch(ctx, spec); err != nil {
				b.Fatal(err)
			}
			took = append(took, time.Since(start))
			b.StopTimer()
			if err := r.Kill(ctx, spec.ContainerID, 0); err != nil {
				b.Fatal(err)
			}
			if _, err := r.Wait(ctx, spec.ContainerID); err != nil {
				b.Fatal(err)
			}
			if err := r.Destroy(ctx, spec.ContainerID); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})

	b.Run("runc-cli", func(b *testing.B) {
		requireRoot(b, "to create containers")
		runc, err := exec.LookPath("runc")
		if err != nil {
			b.Skip("no runc command to compare with: apt-get install runc")
		}
		bundle := b.TempDir()
		rootfs, hostMounts, err := prepareHostRoot(bundle)
		if err != nil {
			b.Fatal(err)
		}
		stateRoot := b.TempDir()
		sandbox := b.TempDir()
		cgroupParent := fmt.Sprintf("atoll-bench-%d", os.Getpid())
		b.Cleanup(func() { removeCgroupParent(b, cgroupParent) })
		stdout, err := os.Create(filepath.Join(sandbox, "stdout"))
		if err != nil {
			b.Fatal(err)
		}
		defer stdout.Close()
		run := func(args ...string) error {
			cmd := exec.Command(runc, append([]string{"--root", stateRoot}, args...)...)
			cmd.Stdout, cmd.Stderr = stdout, stdout
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("runc %s: %w (output in %s)", strings.Join(args, " "), err, stdout.Name())
			}
			return nil
		}
		n := 0
		var took []time.Duration
		defer func() { reportPercentiles(b, took) }()
		for b.Loop() {
			b.StopTimer()
			n++
			id := "bench-" + strconv.Itoa(n)
			params := runcConfigParams{
				Rootfs:       rootfs,
				HostMounts:   hostMounts,
				ReadonlyRoot: true,
				Sandbox:      sandbox,
				CgroupPath:   filepath.Join(cgroupParent, id),
				Resources:    cgroupResources(1, 64, DefaultTaskPidsLimit),
			}
			if err := writeRecord(bundle, "config.json", ociSpec(runcConfig(params), []string{"/bin/sh", "-c", benchScript})); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			start := time.Now()
			if err := run("run", "--detach", "--bundle", bundle, id); err != nil {
				b.Fatal(err)
			}
			took = append(took, time.Since(start))
			b.StopTimer()
			if err := run("delete", "--force", id); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}

// concurrentLaunches is how many containers BenchmarkRuncLaunchConcurrent launches at
// once.
const concurrentLaunches = 100

// BenchmarkRuncLaunchConcurrent measures launches of concurrentLaunches containers at
// once, in rounds: all-running-ms is a round's time from the launch requests to the last
// launch's return, with every task running, and an op is one launch (b.N launches make
// b.N/concurrentLaunches rounds, at least one). Killing and destroying the containers
// after each round is not measured.
func BenchmarkRuncLaunchConcurrent(b *testing.B) {
	r := newTestRunc(b, b.TempDir(), func(c *RuncConfig) {
		c.Logger = slog.New(slog.DiscardHandler)
	})
	sandbox := b.TempDir()
	ctx := context.Background()
	rounds := max(b.N/concurrentLaunches, 1)
	var total time.Duration
	b.ResetTimer()
	for round := range rounds {
		launched := make(chan string, concurrentLaunches)
		failed := make(chan error, concurrentLaunches)
		start := time.Now()
		for i := range concurrentLaunches {
			spec := LaunchSpec{
				ContainerID: fmt.Sprintf("bench-%d-%d", round, i),
				Sandbox:     sandbox,
				Command:     api.CommandInfo{Value: ptr(benchScript)},
				CPUs:        1,
				MemMB:       64,
			}
			go func() {
				if _, err := r.Launch(ctx, spec); err != nil {
					failed <- err
					return
				}
				launched <- spec.ContainerID
			}()
		}
		var ids []string
		var errs []error
		for range concurrentLaunches {
			select {
			case id := <-launched:
				ids = append(ids, id)
			case err := <-failed:
				errs = append(errs, err)
			}
		}
		total += time.Since(start)
		b.StopTimer()
		stopContainers(b, r, ids)
		if len(errs) > 0 {
			b.Fatal(errors.Join(errs...))
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(total)/float64(rounds*concurrentLaunches), "ns/op")
	b.ReportMetric(float64(total)/float64(rounds)/float64(time.Millisecond), "all-running-ms")
}

// stopContainers kills, waits for and destroys the containers, all at once.
func stopContainers(b *testing.B, r *Runc, ids []string) {
	b.Helper()
	ctx := context.Background()
	errs := make(chan error, len(ids))
	for _, id := range ids {
		go func() {
			err := r.Kill(ctx, id, 0)
			if err == nil {
				_, err = r.Wait(ctx, id)
			}
			if err == nil {
				err = r.Destroy(ctx, id)
			}
			errs <- err
		}()
	}
	for range ids {
		if err := <-errs; err != nil {
			b.Error(err)
		}
	}
}

// reportPercentiles reports the p50 and p99 of the launch times, in milliseconds.
func reportPercentiles(b *testing.B, took []time.Duration) {
	if len(took) == 0 {
		return
	}
	slices.Sort(took)
	at := func(p int) float64 { return float64(took[(len(took)-1)*p/100]) / float64(time.Millisecond) }
	b.ReportMetric(at(50), "p50-ms")
	b.ReportMetric(at(99), "p99-ms")
}

// ociSpec is the OCI runtime spec equivalent to cfg, running args.
func ociSpec(cfg *configs.Config, args []string) *specs.Spec {
	spec := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Args:            args,
			Env:             baseEnv(os.Environ()),
			Cwd:             SandboxMountPoint,
			NoNewPrivileges: cfg.NoNewPrivileges,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  cfg.Capabilities.Bounding,
				Effective: cfg.Capabilities.Effective,
				Permitted: cfg.Capabilities.Permitted,
			},
		},
		Root: &specs.Root{Path: cfg.Rootfs, Readonly: cfg.Readonlyfs},
		Linux: &specs.Linux{
			CgroupsPath:   cfg.Cgroups.Path,
			MaskedPaths:   cfg.MaskPaths,
			ReadonlyPaths: cfg.ReadonlyPaths,
			Resources: &specs.LinuxResources{
				CPU: &specs.LinuxCPU{
					Shares: &cfg.Cgroups.Resources.CpuShares,
					Quota:  &cfg.Cgroups.Resources.CpuQuota,
					Period: &cfg.Cgroups.Resources.CpuPeriod,
				},
				Memory: &specs.LinuxMemory{Limit: &cfg.Cgroups.Resources.Memory, Swap: &cfg.Cgroups.Resources.MemorySwap},
				Pids:   &specs.LinuxPids{Limit: cfg.Cgroups.Resources.PidsLimit},
			},
		},
	}
	ociNamespaces := map[configs.NamespaceType]specs.LinuxNamespaceType{
		configs.NEWNS:     specs.MountNamespace,
		configs.NEWPID:    specs.PIDNamespace,
		configs.NEWIPC:    specs.IPCNamespace,
		configs.NEWUTS:    specs.UTSNamespace,
		configs.NEWCGROUP: specs.CgroupNamespace,
	}
	for _, ns := range cfg.Namespaces {
		spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: ociNamespaces[ns.Type]})
	}
	for _, m := range cfg.Mounts {
		spec.Mounts = append(spec.Mounts, specs.Mount{
			Destination: m.Destination,
			Type:        m.Device,
			Source:      m.Source,
			Options:     mountOptions(m),
		})
	}
	return spec
}

// mountOptions are the fstab-style options for m's flags and data.
func mountOptions(m *configs.Mount) []string {
	var options []string
	for _, f := range []struct {
		flag   int
		option string
	}{
		{unix.MS_BIND | unix.MS_REC, "rbind"},
		{unix.MS_RDONLY, "ro"},
		{unix.MS_NOSUID, "nosuid"},
		{unix.MS_NODEV, "nodev"},
		{unix.MS_NOEXEC, "noexec"},
		{unix.MS_STRICTATIME, "strictatime"},
		{unix.MS_RELATIME, "relatime"},
	} {
		if m.Flags&f.flag == f.flag {
			options = append(options, f.option)
		}
	}
	if m.RecAttr != nil && m.RecAttr.Attr_set&unix.MOUNT_ATTR_RDONLY != 0 {
		options = append(options, "rro")
	}
	if m.Data != "" {
		options = append(options, strings.Split(m.Data, ",")...)
	}
	return options
}
