package api

// Labels the built-in frameworks put on every task they launch, so that the task alone
// says which app or job it belongs to (a new leader, the DNS, the load balancer and the
// terminal UI read them).
const (
	// LabelAppID is the Marathon app id of a services task.
	LabelAppID = "atoll.services/app-id"
	// LabelAppVersion is the app version a services task runs.
	LabelAppVersion = "atoll.services/app-version"
	// LabelJobName is the Chronos job name of a jobs task.
	LabelJobName = "atoll.jobs/job"
	// LabelJobScheduled is the due time of the run a jobs task is (RFC 3339, UTC).
	LabelJobScheduled = "atoll.jobs/scheduled"
	// LabelJobAttempt is the attempt of that run a jobs task is: 0, then each retry.
	LabelJobAttempt = "atoll.jobs/attempt"
)

// Tag keys of a gossip Member: every node sets them; nodes find each other's roles and
// addresses through them.
const (
	// MemberTagRole lists the node's roles, comma-separated: master, agent, lb.
	MemberTagRole = "role"
	// MemberTagAPI is a master's API base URL (http://ip:port).
	MemberTagAPI = "api"
	// MemberTagRaft is a master's Raft transport address (ip:port).
	MemberTagRaft = "raft"
	// MemberTagAgentHTTP is an agent's HTTP address (ip:port).
	MemberTagAgentHTTP = "agent_http"
	// MemberTagVersion is the node's Atoll version.
	MemberTagVersion = "version"
	// MemberTagID is the node's stable id, kept across restarts.
	MemberTagID = "id"
)
