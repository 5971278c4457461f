package master

// WithoutLeaderState runs f while this master, Raft's leader, holds no leader state, as in
// the window between its election and the barrier that applies its predecessor's log.
func (m *Master) WithoutLeaderState(f func()) {
	m.mu.Lock()
	ls := m.leader
	m.leader = nil
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.leader = ls
		m.mu.Unlock()
	}()
	f()
}
