package isolate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The files the plain-process containerizer keeps in ProcessConfig.StateDir. They outlive
// the agent: the supervisor records the tasks' exits there, so a restarted agent can
// still learn how its tasks ended, and advertises itself there to the next agent process.
// Nothing is kept per container.
const (
	// journalFile records the launches and exits of containers not destroyed yet (see
	// journal).
	journalFile = "journal.jsonl"
	// The supervisor's socket, lock, pid file and log.
	supervisorSocket  = "supervisor.sock"
	supervisorLock    = "supervisor.lock"
	supervisorPIDFile = "supervisor.pid"
	supervisorLog     = "supervisor.log"
)

// statusRecord is the journal's and the protocol's form of an ExitStatus.
type statusRecord struct {
	Code    int    `json:"code"`
	Signal  int    `json:"signal"`
	Message string `json:"message"`
}

// maxSignal is the highest signal number Linux delivers (SIGRTMAX).
const maxSignal = 64

// exitStatus checks the record and returns the status it describes.
func (r statusRecord) exitStatus() (ExitStatus, error) {
	switch {
	case r.Signal < 0 || r.Signal > maxSignal:
		return ExitStatus{}, fmt.Errorf("exit status: signal %d out of range", r.Signal)
	case r.Signal != 0 && r.Code != -1:
		return ExitStatus{}, fmt.Errorf("exit status: signal %d with code %d, want -1", r.Signal, r.Code)
	case r.Signal == 0 && (r.Code < 0 || r.Code > 255):
		return ExitStatus{}, fmt.Errorf("exit status: code %d out of range", r.Code)
	}
	return ExitStatus{Code: r.Code, Signal: r.Signal, Message: r.Message}, nil
}

// recordOf is the record of an exit status.
func recordOf(st ExitStatus) statusRecord {
	return statusRecord{Code: st.Code, Signal: st.Signal, Message: st.Message}
}

// decodeStrict decodes exactly one JSON value from data into v, rejecting unknown fields
// and anything after the value.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
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

// pidRecord is the supervisor's pid file: who it is, and since when, so that a pid that
// was reused is not mistaken for it.
type pidRecord struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
}

// parsePIDRecord decodes and checks a supervisor pid file.
func parsePIDRecord(data []byte) (pidRecord, error) {
	var rec pidRecord
	if err := decodeStrict(data, &rec); err != nil {
		return pidRecord{}, fmt.Errorf("decode supervisor pid file: %w", err)
	}
	if rec.PID <= 0 || rec.StartTime == 0 {
		return pidRecord{}, fmt.Errorf("supervisor pid file: pid %d started at %d is not a process", rec.PID, rec.StartTime)
	}
	return rec, nil
}

// readPIDRecord reads the supervisor pid file at path.
func readPIDRecord(path string) (pidRecord, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return pidRecord{}, err
	}
	return parsePIDRecord(data)
}

// writeFileAtomic replaces path with data through a temporary file and a rename, so a
// reader sees the old content or the new, never a mix. It does not fsync, for the reason
// the journal does not: what it writes matters only while the host stays up.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
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

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat: 100 on every
// architecture Linux runs Atoll on.
const clockTicks = 100

// bootTicks reads the boot-time clock, on which the kernel stamps each process's start, in
// clock ticks.
func bootTicks() (uint64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, err
	}
	return uint64(ts.Nano()) / uint64(time.Second/clockTicks), nil
}

// readStartTime reads the start time of process pid from /proc.
func readStartTime(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStartTime(data)
}

// openProcess returns a pollable pidfd for pid if it is still the process that started at
// startTime, or nil if that process is gone.
func openProcess(pid int, startTime uint64) (*os.File, error) {
	if started, err := readStartTime(pid); err != nil || started != startTime {
		return nil, nil
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.ESRCH) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	// Checked again now that the pidfd pins the process: the pid may have been reused
	// between the first check and pidfd_open.
	if started, err := readStartTime(pid); err != nil || started != startTime {
		unix.Close(fd)
		return nil, nil
	}
	return os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid)), nil
}

// signalGroup sends sig to the process group led by pid, and to pid itself when it has left
// that group. SIGKILL goes to both, so that a task that moved to a group of its own dies too.
// The caller makes sure pid is still the task: its parent has not reaped it yet, or it was
// checked through a pidfd.
func signalGroup(pid int, sig syscall.Signal) error {
	groupErr := unix.Kill(-pid, sig)
	if groupErr == nil && sig != unix.SIGKILL {
		return nil
	}
	err := unix.Kill(pid, sig)
	if errors.Is(err, unix.ESRCH) {
		err = nil
	}
	if groupErr != nil && !errors.Is(groupErr, unix.ESRCH) {
		return errors.Join(groupErr, err)
	}
	return err
}
