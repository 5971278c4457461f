package agent

import (
	"os"
	"testing"

	"github.com/atoll/atoll/isolate"
)

func TestMain(m *testing.M) {
	// The process containerizer re-executes this test binary as each task's supervisor.
	isolate.RunShimIfRequested()
	os.Exit(m.Run())
}
