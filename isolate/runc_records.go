package isolate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The files of one runc container, in RuncConfig.StateDir/containers/ID. They outlive the
// agent, so that a restarted agent finds its containers and learns how they ended.
const (
	// runcSpecFile is the shim's input, written by the agent; Destroy reads it again to
	// find the container's cgroups and whether it ran an image.
	runcSpecFile = "spec.json"
	// runcShimFile says which shim runs the container and since which boot, written by
	// the shim once the container runs (runcShimRecord).
	runcShimFile = "shim.json"
	// runcExitFile says how the container ended, written by the shim (runcExitRecord).
	runcExitFile = "exit.json"
	// runcKillFile holds the SIGKILL deadline the agent asked for (runcKillRecord).
	runcKillFile = "kill.json"
	// runcShimLog is the shim's stderr: its own logs and libcontainer's.
	runcShimLog = "shim.log"
	// runcRootfsDir was the root of a container on the host's filesystem, before they
	// shared one (see prepareHostRoot): mount points and the host's top-level symlinks.
	runcRootfsDir = "rootfs"
)

// bootIDPath names the current boot; it changes at every boot.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// readBootID returns the current boot's id.
func readBootID() (string, error) {
	data, err := os.ReadFile(bootIDPath)
	if err != nil {
		return "", fmt.Errorf("boot id: %w", err)
	}
	id := strings.TrimSpace(string(data))
	if id == "" {
		return "", fmt.Errorf("boot id: %s is empty", bootIDPath)
	}
	return id, nil
}

// runcShimRecord is runcShimFile: the shim and the container's init, each with its start
// time so that a reused pid is not mistaken for them, and the boot they belong to.
type runcShimRecord struct {
	ShimPID       int    `json:"shim_pid"`
	ShimStartTime uint64 `json:"shim_start_time"`
	PID           int    `json:"pid"`
	StartTime     uint64 `json:"start_time"`
	BootID        string `json:"boot_id"`
}

// parseRuncShimRecord decodes and checks a runcShimFile.
func parseRuncShimRecord(data []byte) (runcShimRecord, error) {
	var rec runcShimRecord
	if err := decodeStrict(data, &rec); err != nil {
		return runcShimRecord{}, fmt.Errorf("decode shim record: %w", err)
	}
	switch {
	case rec.ShimPID <= 0 || rec.ShimStartTime == 0:
		return runcShimRecord{}, fmt.Errorf("shim record: shim pid %d started at %d is not a process", rec.ShimPID, rec.ShimStartTime)
	case rec.PID <= 0 || rec.StartTime == 0:
		return runcShimRecord{}, fmt.Errorf("shim record: container pid %d started at %d is not a process", rec.PID, rec.StartTime)
	case rec.BootID == "":
		return runcShimRecord{}, errors.New("shim record: no boot id")
	}
	return rec, nil
}

// runcExitRecord is runcExitFile.
type runcExitRecord struct {
	statusRecord
	OOMKilled bool `json:"oom_killed,omitempty"`
}

// parseRuncExitRecord decodes and checks a runcExitFile.
func parseRuncExitRecord(data []byte) (ExitStatus, error) {
	var rec runcExitRecord
	if err := decodeStrict(data, &rec); err != nil {
		return ExitStatus{}, fmt.Errorf("decode exit record: %w", err)
	}
	status, err := rec.exitStatus()
	if err != nil {
		return ExitStatus{}, err
	}
	status.OOMKilled = rec.OOMKilled
	return status, nil
}

// runcKillRecord is runcKillFile.
type runcKillRecord struct {
	DeadlineUnixNano int64 `json:"deadline_unix_nano"`
}

// parseRuncKillRecord decodes and checks a runcKillFile and returns its deadline.
func parseRuncKillRecord(data []byte) (time.Time, error) {
	var rec runcKillRecord
	if err := decodeStrict(data, &rec); err != nil {
		return time.Time{}, fmt.Errorf("decode kill record: %w", err)
	}
	if rec.DeadlineUnixNano <= 0 {
		return time.Time{}, fmt.Errorf("kill record: deadline %d is not a time", rec.DeadlineUnixNano)
	}
	return time.Unix(0, rec.DeadlineUnixNano), nil
}

// runcReady is the shim's one message to the agent that started it: the container's
// init, running, or why it could not start.
type runcReady struct {
	PID       int    `json:"pid,omitempty"`
	StartTime uint64 `json:"start_time,omitempty"`
	Error     string `json:"error,omitempty"`
}

// parseRuncReady decodes and checks the shim's message.
func parseRuncReady(data []byte) (runcReady, error) {
	var msg runcReady
	if err := decodeStrict(data, &msg); err != nil {
		return runcReady{}, fmt.Errorf("decode the shim's report: %w", err)
	}
	switch {
	case msg.Error != "" && (msg.PID != 0 || msg.StartTime != 0):
		return runcReady{}, errors.New("the shim's report has both an error and a process")
	case msg.Error == "" && (msg.PID <= 0 || msg.StartTime == 0):
		return runcReady{}, fmt.Errorf("the shim's report: pid %d started at %d is not a process", msg.PID, msg.StartTime)
	}
	return msg, nil
}

// readRecord reads the file name in dir and parses it.
func readRecord[T any](dir, name string, parse func([]byte) (T, error)) (T, error) {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		var zero T
		return zero, err
	}
	return parse(data)
}

// writeRecord encodes v into the file name in dir, atomically.
func writeRecord(dir, name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, name), data)
}
