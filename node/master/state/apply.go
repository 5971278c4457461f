package state

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"

	"github.com/atoll/atoll/api"
	"github.com/hashicorp/go-memdb"
)

// writer applies commands in one memdb write transaction and collects their changes.
type writer struct {
	txn *memdb.Txn
	cfg *FSMConfig
	// index and result are those of the command being applied.
	index   uint64
	result  *ApplyResult
	changes []Change
}

func (f *FSM) newWriter() *writer {
	return &writer{txn: f.store.db.Load().Txn(true), cfg: &f.cfg}
}

func (w *writer) apply(req any) error {
	switch req := req.(type) {
	case *RegisterAgentRequest:
		return w.registerAgent(&req.Agent)
	case *UpdateAgentRequest:
		return w.updateAgent(&req.Agent)
	case *RemoveAgentRequest:
		return w.removeAgent(req.AgentID)
	case *UpsertFrameworkRequest:
		return w.upsertFramework(&req.Framework)
	case *RemoveFrameworkRequest:
		return w.removeFramework(req)
	case *AddTasksRequest:
		return w.addTasks(req.Tasks)
	case *UpdateTaskStatusesRequest:
		return w.updateTaskStatuses(req.Updates)
	case *RemoveTasksRequest:
		return w.removeTasks(req.Keys)
	case *WriteKVRequest:
		return w.writeKV(req)
	}
	return fmt.Errorf("%w: no handler for %T", ErrBadCommand, req)
}

func (w *writer) emit(change Change) {
	change.Index = w.index
	w.changes = append(w.changes, change)
}

func (w *writer) setLastIndex() error {
	if err := w.txn.Insert(tableMeta, &meta{LastIndex: w.index}); err != nil {
		return fmt.Errorf("set last index: %w", err)
	}
	return nil
}

// insert wraps memdb's insert error with the record's table and id.
func (w *writer) insert(table string, record any, id string) error {
	if err := w.txn.Insert(table, record); err != nil {
		return fmt.Errorf("insert %s into %s: %w", id, table, err)
	}
	return nil
}

func (w *writer) delete(table string, record any, id string) error {
	if err := w.txn.Delete(table, record); err != nil {
		return fmt.Errorf("delete %s from %s: %w", id, table, err)
	}
	return nil
}

// validateAgent checks an agent record from a command and fills Info.ID from ID.
func validateAgent(agent *Agent) error {
	if agent.ID == "" {
		return fmt.Errorf("%w: agent id is empty", ErrBadCommand)
	}
	switch {
	case agent.Info.ID == nil:
		agent.Info.ID = &api.AgentID{Value: agent.ID}
	case agent.Info.ID.Value != agent.ID:
		return fmt.Errorf("%w: agent %q: info.id is %q", ErrBadCommand, agent.ID, agent.Info.ID.Value)
	}
	return nil
}

func (w *writer) registerAgent(agent *Agent) error {
	if err := validateAgent(agent); err != nil {
		return err
	}
	kind := AgentAdded
	if _, ok := first[*Agent](w.txn, tableAgents, indexID, agent.ID); ok {
		kind = AgentUpdated
	}
	if err := w.insert(tableAgents, agent, agent.ID); err != nil {
		return err
	}
	w.emit(Change{Kind: kind, Agent: agent})
	return nil
}

func (w *writer) updateAgent(agent *Agent) error {
	if err := validateAgent(agent); err != nil {
		return err
	}
	if _, ok := first[*Agent](w.txn, tableAgents, indexID, agent.ID); !ok {
		return fmt.Errorf("agent %q: %w", agent.ID, ErrNotFound)
	}
	if err := w.insert(tableAgents, agent, agent.ID); err != nil {
		return err
	}
	w.emit(Change{Kind: AgentUpdated, Agent: agent})
	return nil
}

func (w *writer) removeAgent(id string) error {
	agent, ok := first[*Agent](w.txn, tableAgents, indexID, id)
	if !ok {
		return fmt.Errorf("agent %q: %w", id, ErrNotFound)
	}
	// Tasks first, so that no observer sees a task on an agent it was told is gone.
	if err := w.retireTasks(all[*Task](w.txn, tableTasks, indexAgent, id)); err != nil {
		return err
	}
	if err := w.delete(tableAgents, agent, id); err != nil {
		return err
	}
	w.emit(Change{Kind: AgentRemoved, Agent: agent})
	return nil
}

// validateFramework checks a framework record from a command and fills Info.ID from ID.
func validateFramework(framework *Framework) error {
	if framework.ID == "" {
		return fmt.Errorf("%w: framework id is empty", ErrBadCommand)
	}
	switch {
	case framework.Info.ID == nil:
		framework.Info.ID = &api.FrameworkID{Value: framework.ID}
	case framework.Info.ID.Value != framework.ID:
		return fmt.Errorf("%w: framework %q: info.id is %q", ErrBadCommand, framework.ID, framework.Info.ID.Value)
	}
	if framework.Removed {
		return fmt.Errorf("%w: framework %q: only RemoveFramework sets removed", ErrBadCommand, framework.ID)
	}
	return nil
}

func (w *writer) upsertFramework(framework *Framework) error {
	if err := validateFramework(framework); err != nil {
		return err
	}
	kind := FrameworkAdded
	if old, ok := first[*Framework](w.txn, tableFrameworks, indexID, framework.ID); ok {
		if old.Removed {
			// Removal is final: a write made from an older read (a disconnect recorded
			// after a TEARDOWN committed) must not bring the framework back.
			return nil
		}
		kind = FrameworkUpdated
	}
	if err := w.insert(tableFrameworks, framework, framework.ID); err != nil {
		return err
	}
	w.emit(Change{Kind: kind, Framework: framework})
	return nil
}

// removeFramework marks the framework removed; removing a removed one changes nothing, so
// a retried command is harmless.
func (w *writer) removeFramework(req *RemoveFrameworkRequest) error {
	old, ok := first[*Framework](w.txn, tableFrameworks, indexID, req.FrameworkID)
	if !ok {
		return fmt.Errorf("framework %q: %w", req.FrameworkID, ErrNotFound)
	}
	if old.Removed {
		return nil
	}
	// Tasks first, as for agents.
	if err := w.retireTasks(all[*Task](w.txn, tableTasks, indexFramework, old.ID)); err != nil {
		return err
	}
	removed := *old
	removed.Removed = true
	removed.RemovedTime = req.Time
	removed.Connected = false
	if err := w.insert(tableFrameworks, &removed, removed.ID); err != nil {
		return err
	}
	w.emit(Change{Kind: FrameworkRemoved, Framework: &removed})
	return w.trimRemovedFrameworks()
}

// trimRemovedFrameworks forgets the longest-removed frameworks beyond the cap.
func (w *writer) trimRemovedFrameworks() error {
	removed := all[*Framework](w.txn, tableFrameworks, indexRemoved)
	excess := len(removed) - w.cfg.MaxCompletedFrameworks
	if excess <= 0 {
		return nil
	}
	slices.SortFunc(removed, func(a, b *Framework) int {
		return cmp.Or(a.RemovedTime.Compare(b.RemovedTime), cmp.Compare(a.ID, b.ID))
	})
	for _, framework := range removed[:excess] {
		if err := w.delete(tableFrameworks, framework, framework.ID); err != nil {
			return err
		}
	}
	return nil
}

// retireTasks moves live tasks, as they are, to the completed ring.
func (w *writer) retireTasks(tasks []*Task) error {
	for _, task := range tasks {
		if err := w.delete(tableTasks, task, task.ID); err != nil {
			return err
		}
		if err := w.complete(task); err != nil {
			return err
		}
		w.emit(Change{Kind: TaskRemoved, Task: task})
	}
	return nil
}

// complete appends a task to the completed ring and evicts the oldest beyond the cap.
func (w *writer) complete(task *Task) error {
	seq := uint64(1)
	if newest, ok := last[*completedTask](w.txn, tableCompleted, indexID); ok {
		seq = newest.Seq + 1
	}
	if err := w.insert(tableCompleted, &completedTask{Seq: seq, Task: task}, task.ID); err != nil {
		return err
	}
	return trimCompleted(w.txn, w.cfg.MaxCompletedTasks)
}

// trimCompleted evicts the oldest completed tasks until at most limit remain. Only the oldest
// is ever evicted, so the ring's sequence numbers are contiguous and its length is
// newest - oldest + 1.
func trimCompleted(txn *memdb.Txn, limit int) error {
	newest, ok := last[*completedTask](txn, tableCompleted, indexID)
	if !ok {
		return nil
	}
	for {
		oldest, ok := first[*completedTask](txn, tableCompleted, indexID)
		if !ok || newest.Seq-oldest.Seq < uint64(limit) {
			return nil
		}
		if err := txn.Delete(tableCompleted, oldest); err != nil {
			return fmt.Errorf("evict completed task %s: %w", oldest.Task.ID, err)
		}
	}
}

// validateTask checks a task from AddTasks and fills its defaults: Info's ids from the
// record's, STAGING for an empty state, and at most MaxTaskStatuses statuses.
func validateTask(task *Task) error {
	if task.FrameworkID == "" || task.AgentID == "" || task.ID == "" {
		return fmt.Errorf("%w: task %q: framework id, agent id and task id are required (got %q, %q)",
			ErrBadCommand, task.ID, task.FrameworkID, task.AgentID)
	}
	if id := task.Info.TaskID.Value; id != "" && id != task.ID {
		return fmt.Errorf("%w: task %q: info.task_id is %q", ErrBadCommand, task.ID, id)
	}
	if id := task.Info.AgentID.Value; id != "" && id != task.AgentID {
		return fmt.Errorf("%w: task %q: info.agent_id is %q, want %q", ErrBadCommand, task.ID, id, task.AgentID)
	}
	// Equal strings, shared rather than held twice.
	task.Info.TaskID.Value = task.ID
	task.Info.AgentID.Value = task.AgentID
	if task.State == "" {
		task.State = api.TaskStaging
	}
	if excess := len(task.Statuses) - MaxTaskStatuses; excess > 0 {
		task.Statuses = slices.Clone(task.Statuses[excess:])
	}
	for i := range task.Statuses {
		var prev *api.TaskStatus
		if i > 0 {
			prev = &task.Statuses[i-1]
		}
		compactStatus(&task.Statuses[i], task.ID, prev)
	}
	return nil
}

func (w *writer) addTasks(tasks []Task) error {
	for i := range tasks {
		if err := validateTask(&tasks[i]); err != nil {
			return err
		}
	}
	for i := range tasks {
		// A copy, so the stored task does not pin the request's whole array.
		task := new(Task)
		*task = tasks[i]
		if _, ok := first[*Task](w.txn, tableTasks, indexID, task.Key()); ok {
			w.result.Skipped = append(w.result.Skipped, task.Key())
			continue
		}
		var err error
		if task.State.Terminal() {
			err = w.complete(task)
		} else {
			err = w.insert(tableTasks, task, task.ID)
		}
		if err != nil {
			return err
		}
		w.emit(Change{Kind: TaskAdded, Task: task})
	}
	return nil
}

// validateStatusUpdate checks one update (compactStatus fills the status's task id).
func validateStatusUpdate(update *TaskStatusUpdate) error {
	if update.FrameworkID == "" || update.TaskID == "" {
		return fmt.Errorf("%w: status update: framework id and task id are required (got %q, %q)",
			ErrBadCommand, update.FrameworkID, update.TaskID)
	}
	if update.Status.State == "" {
		return fmt.Errorf("%w: status update for task %q: state is empty", ErrBadCommand, update.TaskID)
	}
	if id := update.Status.TaskID.Value; id != "" && id != update.TaskID {
		return fmt.Errorf("%w: status update for task %q: status.task_id is %q", ErrBadCommand, update.TaskID, id)
	}
	return nil
}

func (w *writer) updateTaskStatuses(updates []TaskStatusUpdate) error {
	for i := range updates {
		if err := validateStatusUpdate(&updates[i]); err != nil {
			return err
		}
	}
	for i := range updates {
		update := &updates[i]
		key := TaskKey{FrameworkID: update.FrameworkID, TaskID: update.TaskID}
		old, ok := first[*Task](w.txn, tableTasks, indexID, key)
		if !ok {
			w.result.Skipped = append(w.result.Skipped, key)
			continue
		}
		task := *old
		task.Statuses = appendStatus(old.Statuses, update.Status)
		var prev *api.TaskStatus
		if n := len(task.Statuses); n > 1 {
			prev = &task.Statuses[n-2]
		}
		compactStatus(&task.Statuses[len(task.Statuses)-1], task.ID, prev)
		task.State = update.Status.State
		var err error
		if task.State.Terminal() {
			if err = w.delete(tableTasks, old, old.ID); err == nil {
				err = w.complete(&task)
			}
		} else {
			err = w.insert(tableTasks, &task, task.ID)
		}
		if err != nil {
			return err
		}
		w.emit(Change{Kind: TaskUpdated, Task: &task, Status: &task.Statuses[len(task.Statuses)-1]})
	}
	return nil
}

// appendStatus returns a new slice of the last MaxTaskStatuses of statuses and status; the
// old slice belongs to the old record and is never written.
func appendStatus(statuses []api.TaskStatus, status api.TaskStatus) []api.TaskStatus {
	if len(statuses) >= MaxTaskStatuses {
		statuses = statuses[len(statuses)-MaxTaskStatuses+1:]
	}
	out := make([]api.TaskStatus, len(statuses)+1)
	copy(out, statuses)
	out[len(statuses)] = status
	return out
}

// compactStatus trims a status before it is stored, as Mesos's master does: Data is
// dropped (frameworks get it with the update itself, never from the master's record), the
// task id shares the task's string, and values equal to the previous status's are shared
// with it rather than held twice, since consecutive statuses mostly repeat their agent,
// container status and labels. Records are immutable, so sharing is safe.
func compactStatus(status *api.TaskStatus, taskID string, prev *api.TaskStatus) {
	status.Data = nil
	status.TaskID.Value = taskID
	if prev == nil {
		return
	}
	shareString(&status.State, prev.State)
	shareString(&status.Message, prev.Message)
	shareString(&status.Source, prev.Source)
	shareString(&status.Reason, prev.Reason)
	sharePointer(&status.AgentID, prev.AgentID)
	sharePointer(&status.ExecutorID, prev.ExecutorID)
	sharePointer(&status.Healthy, prev.Healthy)
	sharePointer(&status.Labels, prev.Labels)
	sharePointer(&status.ContainerStatus, prev.ContainerStatus)
}

// shareString makes *s use prev's bytes when the two are equal.
func shareString[S ~string](s *S, prev S) {
	if *s == prev {
		*s = prev
	}
}

// sharePointer makes *p point at prev when the two values are equal.
func sharePointer[T any](p **T, prev *T) {
	if *p != nil && prev != nil && *p != prev && reflect.DeepEqual(*p, prev) {
		*p = prev
	}
}

func (w *writer) removeTasks(keys []TaskKey) error {
	for _, key := range keys {
		task, ok := first[*Task](w.txn, tableTasks, indexID, key)
		if !ok {
			w.result.Skipped = append(w.result.Skipped, key)
			continue
		}
		if err := w.delete(tableTasks, task, task.ID); err != nil {
			return err
		}
		w.emit(Change{Kind: TaskRemoved, Task: task})
	}
	return nil
}
