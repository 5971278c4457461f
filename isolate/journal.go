package isolate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
)

// journalEntry is one line of the journal: that a container was launched, that it exited
// (with its status), or, with neither, that the agent destroyed it and it is no longer
// needed.
type journalEntry struct {
	ContainerID string        `json:"container_id"`
	Launched    bool          `json:"launched,omitempty"`
	Status      *statusRecord `json:"status,omitempty"`
}

// containerRecords are what the journal remembers: for each container launched and not
// destroyed since, its exit status, or nil while it has not exited, as far as the journal
// knows.
type containerRecords map[string]*statusRecord

// parseJournal replays a journal, returning its records, the number of lines read and of
// lines skipped because they do not decode (such as a last line torn by a crash).
func parseJournal(data []byte) (records containerRecords, lines, skipped int) {
	records = make(containerRecords)
	for line := range bytes.Lines(data) {
		lines++
		entry, err := decodeJournalEntry(line)
		if err != nil {
			skipped++
			continue
		}
		switch {
		case entry.Launched:
			records[entry.ContainerID] = nil
		case entry.Status != nil:
			records[entry.ContainerID] = entry.Status
		default:
			delete(records, entry.ContainerID)
		}
	}
	return records, lines, skipped
}

// decodeJournalEntry decodes and checks one line of the journal.
func decodeJournalEntry(line []byte) (journalEntry, error) {
	var entry journalEntry
	if err := decodeStrict(line, &entry); err != nil {
		return journalEntry{}, fmt.Errorf("decode journal entry: %w", err)
	}
	if err := checkContainerID(entry.ContainerID); err != nil {
		return journalEntry{}, fmt.Errorf("journal entry: %w", err)
	}
	if entry.Launched && entry.Status != nil {
		return journalEntry{}, fmt.Errorf("journal entry for %s: both a launch and an exit", entry.ContainerID)
	}
	if entry.Status != nil {
		if _, err := entry.Status.exitStatus(); err != nil {
			return journalEntry{}, fmt.Errorf("journal entry for %s: %w", entry.ContainerID, err)
		}
	}
	return entry, nil
}

// readJournal replays the journal at path; a missing journal is an empty one.
func readJournal(path string) (containerRecords, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return containerRecords{}, nil
	}
	if err != nil {
		return nil, err
	}
	records, _, _ := parseJournal(data)
	return records, nil
}

// journal is the supervisor's record of the containers it launched and of how they ended,
// StateDir/journal.jsonl, kept until the agent destroys them. With it an agent that
// restarts learns how its tasks ended even if the supervisor has died meanwhile, and
// tells a task whose supervisor died before it ended (launched, never exited) from a
// container it has no record of at all. Each launch, exit and destroy is one appended
// line, written by one write(2): a file per container would cost an inode allocation per
// task, which on a busy ext4 costs more than the rest of a launch. The journal is
// rewritten without the destroyed containers once those make up most of it.
//
// Nothing is fsynced: the records matter only while the host stays up, since the tasks
// die with the host, and after a reboot the agent treats every container as lost
// whatever its records say. A sync would cost a millisecond or more per task exit.
//
// A journal is safe for concurrent use.
type journal struct {
	path string

	mu      sync.Mutex
	file    *os.File // opened for appending
	lines   int      // in the file
	records containerRecords
}

// minCompaction is how many lines the journal may hold before it is compacted, whatever
// the number of containers it still has to remember.
const minCompaction = 4096

// openJournal replays the journal at path, which an earlier supervisor may have left, and
// opens it for appending.
func openJournal(path string) (*journal, int, error) {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, 0, err
	}
	records, lines, skipped := parseJournal(data)
	j := &journal{path: path, lines: lines, records: records}
	// Compacted at once: a torn last line would corrupt the next entry appended to it.
	if err := j.compactLocked(); err != nil {
		return nil, 0, err
	}
	return j, skipped, nil
}

// launched records a container's launch.
func (j *journal) launched(containerID string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.records[containerID] = nil
	return j.appendLocked(journalEntry{ContainerID: containerID, Launched: true})
}

// exited records a container's exit.
func (j *journal) exited(containerID string, status statusRecord) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.records[containerID] = &status
	return j.appendLocked(journalEntry{ContainerID: containerID, Status: &status})
}

// forget drops a destroyed container's records, if it has any.
func (j *journal) forget(containerID string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.records[containerID]; !ok {
		return nil
	}
	delete(j.records, containerID)
	return j.appendLocked(journalEntry{ContainerID: containerID})
}

// record returns what the journal remembers of a container: whether it was launched (and
// not destroyed), and its exit status if it has exited.
func (j *journal) record(containerID string) (status *statusRecord, launched bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	status, launched = j.records[containerID]
	return status, launched
}

func (j *journal) appendLocked(entry journalEntry) error {
	line, err := encodeLine(entry)
	if err != nil {
		return err
	}
	if _, err := j.file.Write(line); err != nil {
		return fmt.Errorf("append to %s: %w", j.path, err)
	}
	j.lines++
	if j.lines >= max(minCompaction, 2*len(j.records)) {
		return j.compactLocked()
	}
	return nil
}

// compactLocked rewrites the journal with only what is still remembered: an exit implies
// the launch.
func (j *journal) compactLocked() error {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	enc := json.NewEncoder(w)
	for id, status := range j.records {
		if err := enc.Encode(journalEntry{ContainerID: id, Launched: status == nil, Status: status}); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := writeFileAtomic(j.path, buf.Bytes()); err != nil {
		return fmt.Errorf("compact %s: %w", j.path, err)
	}
	file, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if j.file != nil {
		j.file.Close()
	}
	j.file, j.lines = file, len(j.records)
	return nil
}
