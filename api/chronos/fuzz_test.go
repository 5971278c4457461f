package chronos_test

import (
	"encoding/json"
	"testing"

	"github.com/atoll/atoll/api/chronos"
)

// FuzzJob: whatever JSON decodes as a Job encodes to JSON that decodes to the same Job
// (what omitempty leaves out, like an empty list, comes back as nothing).
func FuzzJob(f *testing.F) {
	f.Add([]byte(`{"name":"a","command":"true","schedule":"R/2026-01-01T00:00:00Z/PT1H","retries":2,"cpus":0.1}`))
	f.Add([]byte(`{"name":"b","command":"x","parents":["a"],"container":{"type":"DOCKER","image":"i","volumes":[{"containerPath":"/c"}]},"fetch":[{"uri":"u","extract":false}]}`))
	f.Add([]byte(`{"successCount":3,"lastSuccess":"2026-01-01T00:00:00.000Z","environmentVariables":[{"name":"A","value":"1"}],"constraints":[["a","LIKE","b"]]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var j chronos.Job
		if json.Unmarshal(data, &j) != nil {
			return
		}
		first, err := json.Marshal(j)
		if err != nil {
			t.Fatalf("marshal %+v: %v", j, err)
		}
		var again chronos.Job
		if err := json.Unmarshal(first, &again); err != nil {
			t.Fatalf("decode %s: %v", first, err)
		}
		second, err := json.Marshal(again)
		if err != nil {
			t.Fatalf("marshal %+v: %v", again, err)
		}
		if string(first) != string(second) {
			t.Errorf("round trip changed the job:\n%s\n%s", first, second)
		}
	})
}
