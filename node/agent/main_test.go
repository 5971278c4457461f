package agent

import (
	"os"
	"testing"

	"github.com/atoll/atoll/isolate"
)

func TestMain(m *testing.M) {
	// The containerizers re-execute this test binary as each runc container's init and
	// shim, and as the process containerizer's supervisor.
	isolate.RunContainerInitIfRequested()
	isolate.RunShimIfRequested()
	os.Exit(m.Run())
}
