package main

import (
	"bytes"
	"strings"
	"testing"
)

// stream is what `go test -json` prints for two parallel tests whose output interleaves,
// one of which fails in a subtest, plus a skip for want of root and a package that passes.
const stream = `{"Action":"start","Package":"a"}
{"Action":"run","Package":"a","Test":"TestGood"}
{"Action":"output","Package":"a","Test":"TestGood","Output":"=== RUN   TestGood\n"}
{"Action":"run","Package":"a","Test":"TestBad"}
{"Action":"output","Package":"a","Test":"TestBad","Output":"=== RUN   TestBad\n"}
{"Action":"output","Package":"a","Test":"TestGood","Output":"    good_test.go:9: noise from the good one\n"}
{"Action":"run","Package":"a","Test":"TestBad/sub"}
{"Action":"output","Package":"a","Test":"TestBad/sub","Output":"    bad_test.go:12: got 3, want 4\n"}
{"Action":"output","Package":"a","Test":"TestBad/sub","Output":"--- FAIL: TestBad/sub (0.00s)\n"}
{"Action":"fail","Package":"a","Test":"TestBad/sub"}
{"Action":"fail","Package":"a","Test":"TestBad"}
{"Action":"pass","Package":"a","Test":"TestGood"}
{"Action":"output","Package":"a","Test":"TestRoot","Output":"    root_test.go:5: needs root privileges\n"}
{"Action":"skip","Package":"a","Test":"TestRoot"}
{"Action":"output","Package":"a","Output":"FAIL\ta\t0.01s\n"}
{"Action":"fail","Package":"a"}
{"Action":"output","Package":"b","Output":"ok  \tb\t0.01s\n"}
{"Action":"pass","Package":"b"}
`

func TestReport(t *testing.T) {
	for _, strict := range []bool{false, true} {
		var log, out bytes.Buffer
		r, err := read(strings.NewReader(stream), &log)
		if err != nil {
			t.Fatal(err)
		}
		if r.print(&out, strict) {
			t.Errorf("strict=%v: a run with a failed test reported as passed", strict)
		}
		got := out.String()
		for _, want := range []string{
			"FAIL\ta\t0.01s\nok  \tb\t0.01s\n",
			"\n== FAIL a TestBad/sub\n    bad_test.go:12: got 3, want 4\n--- FAIL: TestBad/sub (0.00s)\n",
			"tests: 1 passed, 2 failed, 1 skipped\n",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("strict=%v: report lacks %q:\n%s", strict, want, got)
			}
		}
		if strings.Contains(got, "noise from the good one") || strings.Contains(got, "== FAIL a TestBad\n") {
			t.Errorf("strict=%v: report shows a passing test's output or the failed parent:\n%s", strict, got)
		}
		if hasSkipSection := strings.Contains(got, "privileged tests skipped"); hasSkipSection != strict {
			t.Errorf("strict=%v: privileged skip section shown = %v", strict, hasSkipSection)
		}
		if !strings.Contains(log.String(), "    good_test.go:9: noise from the good one\n") {
			t.Errorf("the log lacks a passing test's output:\n%s", log.String())
		}
	}
}

func TestReportPassesOnlyWhenNothingFailed(t *testing.T) {
	pass := `{"Action":"output","Package":"b","Test":"TestA","Output":"    a_test.go:1: needs root\n"}
{"Action":"skip","Package":"b","Test":"TestA"}
{"Action":"pass","Package":"b"}
`
	for _, c := range []struct {
		strict bool
		want   bool
	}{{false, true}, {true, false}} {
		r, err := read(strings.NewReader(pass), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if got := r.print(&bytes.Buffer{}, c.strict); got != c.want {
			t.Errorf("a root skip with strict=%v: passed = %v, want %v", c.strict, got, c.want)
		}
	}
	broken := "# a\nbuild failed: x.go:1: syntax error\n" + `{"Action":"fail","Package":"a"}` + "\n"
	r, err := read(strings.NewReader(broken), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if r.print(&out, false) || !strings.Contains(out.String(), "build failed: x.go:1: syntax error") {
		t.Errorf("a build failure: report %q, want a failure showing the build output", out.String())
	}
}

func FuzzRead(f *testing.F) {
	f.Add(stream)
	f.Add("{\"Action\":\"fail\"}\n{")
	f.Fuzz(func(t *testing.T, in string) {
		r, err := read(strings.NewReader(in), &bytes.Buffer{})
		if err != nil {
			return
		}
		r.print(&bytes.Buffer{}, true)
	})
}

// TestLongFailureKeepsAssertions: when a failed test's output is too long to show whole,
// the lines the test itself reported are shown from the part left out.
func TestLongFailureKeepsAssertions(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"Action":"output","Package":"a","Test":"TestLong","Output":"    long_test.go:7: want 1, got 2\n"}` + "\n")
	for range maxLines + 10 {
		b.WriteString(`{"Action":"output","Package":"a","Test":"TestLong","Output":"        a dumped log line\n"}` + "\n")
	}
	b.WriteString(`{"Action":"fail","Package":"a","Test":"TestLong"}` + "\n")
	r, err := read(strings.NewReader(b.String()), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r.print(&out, false)
	if !strings.Contains(out.String(), "the test's own lines among them:)\n    long_test.go:7: want 1, got 2\n(the last lines:)\n") {
		t.Errorf("report lacks the left-out assertion:\n%s", out.String())
	}
}
