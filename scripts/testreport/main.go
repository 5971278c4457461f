// Command testreport turns the event stream of `go test -json` into what a person reading
// a CI log needs: one line per package, then, for every failed test, that test's own
// output (parallel tests interleave in -v output, so a failure's lines are otherwise lost
// among its neighbours'), then the counts. Under -privileged-skips-fail a skipped test
// whose reason names root or privileges counts as a failure.
//
//	go test -json ./... | go run ./scripts/testreport -log test.log
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json's TestEvent).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

// maxLines bounds how much of one failed test's output is printed.
const maxLines = 150

var privileged = regexp.MustCompile(`(?i)privilege|root`)

// testLine matches what a test itself reported (t.Log, t.Error): "    name_test.go:12: …".
var testLine = regexp.MustCompile(`^\s+[\w.-]+_test\.go:\d+: `)

type key struct{ pkg, test string }

type report struct {
	output  map[key][]string
	failed  []key
	skipped []key
	passed  int
	pkgFail []string
	// summary holds the packages' ok and FAIL lines in the order they came.
	summary []string
	// nonJSON is what the stream held that was not an event (a build failure's text).
	nonJSON []string
}

func main() {
	logPath := flag.String("log", "", "also write the plain test output to this file")
	strictSkips := flag.Bool("privileged-skips-fail", false, "count a test skipped for want of privileges as failed")
	flag.Parse()

	var log io.Writer = io.Discard
	if *logPath != "" {
		f, err := os.Create(*logPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testreport:", err)
			os.Exit(2)
		}
		defer f.Close()
		log = f
	}
	r, err := read(os.Stdin, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	if !r.print(os.Stdout, *strictSkips) {
		os.Exit(1)
	}
}

// read consumes the event stream, copying every output line to log.
func read(in io.Reader, log io.Writer) (*report, error) {
	r := &report{output: make(map[key][]string)}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			r.nonJSON = append(r.nonJSON, string(line))
			fmt.Fprintln(log, string(line))
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "output":
			io.WriteString(log, e.Output)
			l := strings.TrimRight(e.Output, "\n")
			r.output[k] = append(r.output[k], l)
			if e.Test == "" && (strings.HasPrefix(l, "ok ") || strings.HasPrefix(l, "FAIL") || strings.HasPrefix(l, "panic:")) {
				r.summary = append(r.summary, l)
			}
		case "build-output":
			r.nonJSON = append(r.nonJSON, strings.TrimRight(e.Output, "\n"))
			io.WriteString(log, e.Output)
		case "pass":
			if e.Test != "" {
				r.passed++
			}
		case "fail":
			if e.Test != "" {
				r.failed = append(r.failed, k)
			} else {
				r.pkgFail = append(r.pkgFail, e.Package)
			}
		case "skip":
			if e.Test != "" {
				r.skipped = append(r.skipped, k)
			}
		}
	}
	return r, sc.Err()
}

// print writes the report and says whether the run passed.
func (r *report) print(w io.Writer, strictSkips bool) bool {
	for _, l := range r.summary {
		fmt.Fprintln(w, l)
	}
	ok := len(r.failed) == 0 && len(r.pkgFail) == 0
	if len(r.nonJSON) > 0 && !ok {
		fmt.Fprintln(w, "\n== build output")
		for _, l := range r.nonJSON {
			fmt.Fprintln(w, l)
		}
	}
	// A subtest's failure fails its parent too; the innermost failure is the informative one.
	leaves := slices.DeleteFunc(slices.Clone(r.failed), func(k key) bool {
		return slices.ContainsFunc(r.failed, func(o key) bool { return o.pkg == k.pkg && strings.HasPrefix(o.test, k.test+"/") })
	})
	for _, k := range leaves {
		fmt.Fprintf(w, "\n== FAIL %s %s\n", k.pkg, k.test)
		lines := r.output[k]
		if len(lines) > maxLines {
			left := lines[:len(lines)-maxLines]
			fmt.Fprintf(w, "(first %d of %d lines left out; the test's own lines among them:)\n", len(left), len(lines))
			for _, l := range left {
				if testLine.MatchString(l) && !strings.Contains(l, "level=") {
					fmt.Fprintln(w, l)
				}
			}
			fmt.Fprintln(w, "(the last lines:)")
			lines = lines[len(lines)-maxLines:]
		}
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	}
	for _, pkg := range r.pkgFail {
		if !slices.ContainsFunc(r.failed, func(k key) bool { return k.pkg == pkg }) {
			fmt.Fprintf(w, "\n== FAIL %s (no test failed: a build error, a panic outside a test or a timeout)\n", pkg)
			for _, l := range tail(r.output[key{pkg, ""}], maxLines) {
				fmt.Fprintln(w, l)
			}
		}
	}
	var badSkips []key
	for _, k := range r.skipped {
		if strictSkips && slices.ContainsFunc(r.output[k], privileged.MatchString) {
			badSkips = append(badSkips, k)
		}
	}
	if len(badSkips) > 0 {
		ok = false
		fmt.Fprintln(w, "\n== privileged tests skipped, which is a failure here:")
		for _, k := range badSkips {
			fmt.Fprintf(w, "%s %s\n", k.pkg, k.test)
			for _, l := range tail(r.output[k], 5) {
				fmt.Fprintln(w, l)
			}
		}
	}
	fmt.Fprintf(w, "\ntests: %d passed, %d failed, %d skipped\n", r.passed, len(r.failed), len(r.skipped))
	return ok
}

func tail(lines []string, n int) []string {
	return lines[max(len(lines)-n, 0):]
}
