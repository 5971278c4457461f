// Command atoll is the whole of Atoll in one binary: every node role (master, agent) and
// every client (the CLI); see cli/.
package main

import (
	"os"

	"github.com/atoll/atoll/cli"
	"github.com/atoll/atoll/isolate"
)

func main() {
	// The binary is also its containers' init and their shims: those re-executions never
	// reach the CLI.
	isolate.RunContainerInitIfRequested()
	isolate.RunShimIfRequested()
	os.Exit(cli.Main(os.Args))
}
