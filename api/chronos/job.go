// Package chronos holds the wire types of the Chronos job API (jobs, their summaries and
// run statistics, with Chronos's JSON field names) that every master serves under
// /v1/scheduler and /scheduler, and Client, which speaks it.
package chronos

// Job is a Chronos job definition. A scheduled job has Schedule (ISO 8601 repeating
// interval) or Cron (Atoll's addition: a 5-field cron schedule in ScheduleTimeZone); a
// dependent job has Parents instead. The Counters are shown with a job and ignored when
// one is posted.
type Job struct {
	// Name matches [\w.-]+; it names the job in every path.
	Name    string `json:"name"`
	Command string `json:"command"`
	// Shell runs Command through /bin/sh -c; nil means true.
	Shell     *bool    `json:"shell,omitempty"`
	Arguments []string `json:"arguments,omitempty"`
	// Schedule is "R[n]/<start>/<period>", like "R/2026-03-08T20:00:00.000Z/PT2H".
	Schedule string `json:"schedule,omitempty"`
	// ScheduleTimeZone is an IANA zone name; it overrides the offset in Schedule.
	ScheduleTimeZone string `json:"scheduleTimeZone,omitempty"`
	Cron             string `json:"cron,omitempty"`
	// Parents are the jobs that must succeed before this one runs.
	Parents []string `json:"parents,omitempty"`
	// Retries is how often a failed run is retried; nil means 2.
	Retries *int `json:"retries,omitempty"`
	// CPUs, Mem (MB) and Disk (MB) of one run; 0 means the defaults 0.1, 128 and 256.
	CPUs       float64 `json:"cpus"`
	Mem        float64 `json:"mem"`
	Disk       float64 `json:"disk"`
	Disabled   bool    `json:"disabled"`
	Concurrent bool    `json:"concurrent"`
	// Owner is an email address to tell of failures; OwnerName a name for it.
	Owner                string   `json:"owner,omitempty"`
	OwnerName            string   `json:"ownerName,omitempty"`
	Description          string   `json:"description,omitempty"`
	RunAsUser            string   `json:"runAsUser,omitempty"`
	EnvironmentVariables []EnvVar `json:"environmentVariables,omitempty"`
	// Constraints are [attribute, EQUALS|LIKE|UNLIKE, value] triples.
	Constraints  [][]string `json:"constraints,omitempty"`
	HighPriority bool       `json:"highPriority,omitempty"`
	// SoftError keeps a job enabled however often it fails.
	SoftError bool `json:"softError,omitempty"`
	// MaxCompletionTime (milliseconds) kills a run that takes longer; 0 is no limit.
	MaxCompletionTime int64      `json:"maxCompletionTime,omitempty"`
	Fetch             []Fetch    `json:"fetch,omitempty"`
	URIs              []string   `json:"uris,omitempty"`
	Container         *Container `json:"container,omitempty"`
	// Epsilon and Async were removed in Chronos 3: accepted and ignored.
	Epsilon string `json:"epsilon,omitempty"`
	Async   bool   `json:"async,omitempty"`
	Counters
}

// Counters are a job's read-only statistics.
type Counters struct {
	SuccessCount int64 `json:"successCount"`
	ErrorCount   int64 `json:"errorCount"`
	// LastSuccess and LastError are times like "2026-03-01T12:00:00.000Z", "" for never.
	LastSuccess            string `json:"lastSuccess"`
	LastError              string `json:"lastError"`
	ErrorsSinceLastSuccess int64  `json:"errorsSinceLastSuccess"`
}

// EnvVar is one environment variable of a job's task.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Fetch is a URI fetched into the task's sandbox before it runs.
type Fetch struct {
	URI        string `json:"uri"`
	Executable bool   `json:"executable,omitempty"`
	// Extract unpacks archives; nil means true.
	Extract *bool `json:"extract,omitempty"`
	Cache   bool  `json:"cache,omitempty"`
}

// Container is the image a job's task runs in.
type Container struct {
	// Type is DOCKER or MESOS.
	Type           string      `json:"type"`
	Image          string      `json:"image"`
	Network        string      `json:"network,omitempty"`
	Volumes        []Volume    `json:"volumes,omitempty"`
	ForcePullImage bool        `json:"forcePullImage,omitempty"`
	Parameters     []Parameter `json:"parameters,omitempty"`
}

// Volume mounts a host path into a job's container.
type Volume struct {
	ContainerPath string `json:"containerPath"`
	HostPath      string `json:"hostPath,omitempty"`
	// Mode is RO or RW.
	Mode string `json:"mode,omitempty"`
}

// Parameter is a key/value option for the containerizer.
type Parameter struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Summary.Status values: a job's latest outcome.
const (
	StatusSuccess = "success"
	StatusFailure = "failure"
	StatusFresh   = "fresh"
)

// Summary.State values: what a job does now.
const (
	StateIdle    = "idle"
	StateQueued  = "queued"
	StateRunning = "running"
)

// Summary is one job of GET /jobs/summary.
type Summary struct {
	Name string `json:"name"`
	// Status is StatusSuccess, StatusFailure or StatusFresh.
	Status string `json:"status"`
	// State is StateIdle, StateQueued or StateRunning.
	State string `json:"state"`
	// Schedule is the job's schedule or cron expression, "" for a dependent job.
	Schedule string   `json:"schedule"`
	Parents  []string `json:"parents"`
	Disabled bool     `json:"disabled"`
}

// Stat answers GET /job/stat/{name}: the durations of the job's successful runs and its
// runs, the kept history first, then those not yet ended.
type Stat struct {
	Histogram Histogram `json:"histogram"`
	History   []Run     `json:"taskStatHistory"`
}

// Histogram summarises run durations in seconds.
type Histogram struct {
	P75    float64 `json:"75thPercentile"`
	P95    float64 `json:"95thPercentile"`
	P98    float64 `json:"98thPercentile"`
	P99    float64 `json:"99thPercentile"`
	Median float64 `json:"median"`
	Mean   float64 `json:"mean"`
	Count  int     `json:"count"`
}

// Run.Status values.
const (
	RunQueued   = "queued"
	RunLaunched = "launched"
	RunRunning  = "running"
	RunSuccess  = "success"
	RunFailure  = "failure"
)

// Run is one run of a job.
type Run struct {
	TaskID  string `json:"taskId"`
	JobName string `json:"jobName"`
	// Attempt counts from 0: retries have higher ones.
	Attempt       int    `json:"attempt"`
	ScheduledTime string `json:"scheduledTime"`
	TaskStartTime string `json:"taskStartTime,omitempty"`
	TaskEndTime   string `json:"taskEndTime,omitempty"`
	// TaskState is the Mesos state of the run's task, like TASK_RUNNING.
	TaskState string `json:"taskState"`
	// Status is one of the Run constants.
	Status  string `json:"status"`
	SlaveID string `json:"slaveId,omitempty"`
	Host    string `json:"host,omitempty"`
	Message string `json:"message,omitempty"`
	// Killed says why the run was killed: "user" or "maxCompletionTime".
	Killed          string   `json:"killed,omitempty"`
	DurationSeconds float64  `json:"durationSeconds,omitempty"`
	Arguments       []string `json:"arguments,omitempty"`
}
