package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/atoll/atoll/node/master"
)

// TestTUICommand runs `atoll tui` against a master with a q typed: it draws the cluster
// and quits.
func TestTUICommand(t *testing.T) {
	ts := master.NewTestServer(t)
	for _, args := range [][]string{{"tui"}, {"tui", "--read-only"}} {
		a := newTestApp(t, map[string]string{addrEnv: ts.URL})
		root := a.rootCmd()
		root.SetIn(strings.NewReader("q"))
		root.SetArgs(args)
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		err := root.ExecuteContext(ctx)
		cancel()
		out := a.stdout.String()
		if err != nil || !strings.Contains(out, "atoll "+ts.URL) {
			t.Errorf("atoll %s = %v, screen:\n%q", strings.Join(args, " "), err, out)
		}
		if readOnly := strings.Contains(out, "read-only"); readOnly != (len(args) == 2) {
			t.Errorf("atoll %s: the header says read-only: %v", strings.Join(args, " "), readOnly)
		}
	}
}

func TestTUIUsage(t *testing.T) {
	tests := []struct {
		args   []string
		env    map[string]string
		stderr string
	}{
		{args: []string{"tui", "extra"}, stderr: "atoll: atoll tui takes no arguments, got [\"extra\"]\nRun 'atoll tui --help' for usage.\n"},
		{args: []string{"tui", "--addr", "ftp://master"}, stderr: "atoll: --addr \"ftp://master\": want a URL like http://host:5050\nRun 'atoll tui --help' for usage.\n"},
		{args: []string{"tui"}, env: map[string]string{addrEnv: "http://"}, stderr: "atoll: ATOLL_ADDR \"http://\": want a URL like http://host:5050\nRun 'atoll tui --help' for usage.\n"},
	}
	for _, tt := range tests {
		a := newTestApp(t, tt.env)
		if code := a.runCLI(t, tt.args...); code != 2 || a.stderr.String() != tt.stderr {
			t.Errorf("atoll %s = %d, stderr %q; want 2, %q", strings.Join(tt.args, " "), code, a.stderr.String(), tt.stderr)
		}
	}
}
