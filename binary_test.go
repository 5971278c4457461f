package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestUnusedMethodsPruned: no function in the binary calls reflect's Method or
// MethodByName with a name it computes, as text/template and html/template do to execute
// a template, and as Mustache libraries do to look a name up. One such call makes the
// linker keep every exported method of every type in the binary: 5 MB of its 26 MB. On
// Linux 6.18 nearly all of the binary is mapped into every Atoll process at start, so those
// megabytes are the idle agent's RSS (issue 2: at most 30 MB).
func TestUnusedMethodsPruned(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	build := exec.Command("go", "build", "-tags", "netgo,osusergo", "-ldflags=-dumpdep", "-o", os.DevNull, ".")
	out, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("main.main -> ")) {
		t.Fatalf("no dependency dump from the linker:\n%.2000s", out)
	}
	// The linker's dependency dump marks such a caller "<ReflectMethod>".
	callers := map[string]bool{}
	lines := bufio.NewScanner(bytes.NewReader(out))
	lines.Buffer(nil, 1<<20)
	for lines.Scan() {
		caller, _, ok := strings.Cut(lines.Text(), " <ReflectMethod> -> ")
		if ok && !strings.HasPrefix(caller, "reflect.") && !strings.HasPrefix(caller, "type:reflect.") {
			callers[caller] = true
		}
	}
	if err := lines.Err(); err != nil {
		t.Fatalf("reading the dependency dump: %v", err)
	}
	if len(callers) > 0 {
		t.Errorf("these functions keep every exported method in the binary: %v", callers)
	}
}
