package agent

import (
	"errors"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/atoll/atoll/isolate"
)

func TestMain(m *testing.M) {
	// The containerizers re-execute this test binary as each runc container's init and
	// shim, and as the process containerizer's supervisor.
	isolate.RunContainerInitIfRequested()
	isolate.RunShimIfRequested()
	// The health check tests run it as their task.
	if addr := os.Getenv(healthServerEnv); addr != "" {
		runHealthServer(addr)
	}
	os.Exit(m.Run())
}

// healthServerEnv, set to a listen address, makes the test binary a task for the health
// check tests: it serves GET /health on that address, answering 200 until a file named
// "sick" appears in its working directory and 503 from then on, and it stops listening
// (while it keeps running) once a file named "deaf" appears.
const healthServerEnv = "ATOLL_AGENT_TEST_HEALTH_SERVER"

func runHealthServer(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		os.Stderr.WriteString("health server: " + err.Error() + "\n")
		os.Exit(2)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
			return
		}
		if _, err := os.Stat("sick"); err == nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	go func() {
		if err := http.Serve(ln, handler); err != nil && !errors.Is(err, net.ErrClosed) {
			os.Stderr.WriteString("health server: " + err.Error() + "\n")
			os.Exit(2)
		}
	}()
	// Until the agent kills it; the loop keeps the process alive (and busy enough that
	// the runtime never sees a deadlock) after the listener closed.
	for {
		if _, err := os.Stat("deaf"); err == nil {
			ln.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
}
