package state

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestHclogAdapter(t *testing.T) {
	var buf bytes.Buffer
	adapter := newHclogAdapter(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	named := adapter.Named("raft").Named("snapshots").With("node", "n1")

	named.Info("took snapshot", "index", 7)
	named.Trace("not shown")
	named.Debug("shown")
	named.ResetNamed("transport").Warn("slow", "peer", "p")
	adapter.Error("failed")
	adapter.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}).Print("from std")

	var got []map[string]any
	for line := range strings.Lines(buf.String()) {
		var record map[string]any
		if err := json.Unmarshal([]byte(line), &record); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		delete(record, "time")
		got = append(got, record)
	}
	want := []map[string]any{
		{"level": "INFO", "msg": "took snapshot", "logger": "raft.snapshots", "node": "n1", "index": 7.0},
		{"level": "DEBUG", "msg": "shown", "logger": "raft.snapshots", "node": "n1"},
		{"level": "WARN", "msg": "slow", "logger": "transport", "node": "n1", "peer": "p"},
		{"level": "ERROR", "msg": "failed"},
		{"level": "WARN", "msg": "from std"},
	}
	if toJSON(t, got) != toJSON(t, want) {
		t.Errorf("records\ngot  %s\nwant %s", toJSON(t, got), toJSON(t, want))
	}

	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"name", named.Name(), "raft.snapshots"},
		{"implied args", toJSON(t, named.ImpliedArgs()), `["node","n1"]`},
		{"level", named.GetLevel(), hclog.Debug},
		{"is trace", named.IsTrace(), false},
		{"is debug", named.IsDebug(), true},
		{"is error", named.IsError(), true},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}
