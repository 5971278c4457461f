package isolate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The files the plain-process containerizer keeps per container in ProcessConfig.StateDir/ID.
// They outlive the agent: the shim reads the spec and kill requests from them and records the
// task's exit there, so a restarted agent can still learn how its tasks ended.
const (
	specFile   = "spec.json"   // the shim's instructions, written by Launch
	statusFile = "status.json" // the task's exit, written by the shim
	killFile   = "kill.json"   // the latest kill request, written by Kill
	shimLog    = "shim.log"    // the shim's own stderr, for diagnostics
)

// statusRecord is the on-disk form of an ExitStatus.
type statusRecord struct {
	Code    int    `json:"code"`
	Signal  int    `json:"signal"`
	Message string `json:"message"`
}

// maxSignal is the highest signal number Linux delivers (SIGRTMAX).
const maxSignal = 64

// parseStatus decodes and checks a status file written by the shim.
func parseStatus(data []byte) (ExitStatus, error) {
	var rec statusRecord
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return ExitStatus{}, fmt.Errorf("decode exit status: %w", err)
	}
	switch {
	case rec.Signal < 0 || rec.Signal > maxSignal:
		return ExitStatus{}, fmt.Errorf("exit status: signal %d out of range", rec.Signal)
	case rec.Signal != 0 && rec.Code != -1:
		return ExitStatus{}, fmt.Errorf("exit status: signal %d with code %d, want -1", rec.Signal, rec.Code)
	case rec.Signal == 0 && (rec.Code < 0 || rec.Code > 255):
		return ExitStatus{}, fmt.Errorf("exit status: code %d out of range", rec.Code)
	}
	return ExitStatus{Code: rec.Code, Signal: rec.Signal, Message: rec.Message}, nil
}

// exitStatusOf describes how a reaped process ended.
func exitStatusOf(ws syscall.WaitStatus) ExitStatus {
	if ws.Signaled() {
		sig := ws.Signal()
		return ExitStatus{Code: -1, Signal: int(sig), Message: "killed by " + signalName(sig)}
	}
	code := ws.ExitStatus()
	return ExitStatus{Code: code, Message: fmt.Sprintf("exited with status %d", code)}
}

// signalName names a signal the way kill(1) does ("SIGKILL"), or by number when it has none.
func signalName(sig unix.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return fmt.Sprintf("signal %d", int(sig))
}

// writeStatus records the task's exit for the agent, atomically so a reader never sees half.
func writeStatus(path string, st ExitStatus) error {
	data, err := json.Marshal(statusRecord{Code: st.Code, Signal: st.Signal, Message: st.Message})
	if err != nil {
		return fmt.Errorf("encode exit status: %w", err)
	}
	return writeFileAtomic(path, data)
}

// killRequest asks the shim to stop its task: SIGTERM now (when the deadline is still ahead)
// and SIGKILL at the deadline. The deadline is absolute so that a shorter grace period in a
// later request is never lost, even when the shim sees only the last of several signals.
// It is wall-clock time, the only clock the agent and the shim share, so a clock step
// during the grace period lengthens or shortens it.
type killRequest struct {
	DeadlineUnixNano int64 `json:"deadline_unix_nano"`
}

// parseKillRequest decodes a kill request file.
func parseKillRequest(data []byte) (time.Time, error) {
	var req killRequest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return time.Time{}, fmt.Errorf("decode kill request: %w", err)
	}
	if req.DeadlineUnixNano <= 0 {
		return time.Time{}, fmt.Errorf("kill request: deadline %d is not a time", req.DeadlineUnixNano)
	}
	return time.Unix(0, req.DeadlineUnixNano), nil
}

// readKillRequest reads the deadline of the latest kill request.
func readKillRequest(path string) (time.Time, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, err
	}
	return parseKillRequest(data)
}

// writeKillRequest records a kill deadline atomically.
func writeKillRequest(path string, deadline time.Time) error {
	data, err := json.Marshal(killRequest{DeadlineUnixNano: deadline.UnixNano()})
	if err != nil {
		return fmt.Errorf("encode kill request: %w", err)
	}
	return writeFileAtomic(path, data)
}

// writeFileAtomic replaces path with data through a synced temporary file and a rename.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	return os.Rename(tmp.Name(), path)
}

// startTimeField is the 1-based position of starttime in /proc/PID/stat (proc(5)).
const startTimeField = 22

// parseStartTime extracts a process's start time, in clock ticks since boot, from the
// contents of /proc/PID/stat. The command name (field 2) is parenthesised and may itself
// contain spaces and parentheses, so fields are counted from the last ')'.
func parseStartTime(stat []byte) (uint64, error) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, errors.New("stat: no command name")
	}
	fields := bytes.Fields(stat[end+1:])
	// fields[0] is field 3 (state).
	const index = startTimeField - 3
	if len(fields) <= index {
		return 0, fmt.Errorf("stat: %d fields after the command name, want more than %d", len(fields), index)
	}
	start, err := strconv.ParseUint(string(fields[index]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat: start time: %w", err)
	}
	return start, nil
}

// readStartTime reads the start time of process pid from /proc.
func readStartTime(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStartTime(data)
}
