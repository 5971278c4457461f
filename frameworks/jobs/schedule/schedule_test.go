package schedule

import (
	"strings"
	"testing"
	"time"
)

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// runs returns the first n runs after after ("" entries once the schedule ends).
func runs(s Schedule, after time.Time, n int) []string {
	var out []string
	for range n {
		next, ok := s.Next(after)
		if !ok {
			out = append(out, "")
			continue
		}
		out = append(out, next.UTC().Format(time.RFC3339Nano))
		after = next
	}
	return out
}

func TestISO8601(t *testing.T) {
	now := mustTime(t, "2024-05-05T10:20:00Z")
	tests := []struct {
		name, expr, zone, after string
		want                    []string
	}{
		{"five runs every 2 s", "R5/2024-01-01T00:00:00Z/PT2S", "", "2023-12-31T00:00:00Z",
			[]string{"2024-01-01T00:00:00Z", "2024-01-01T00:00:02Z", "2024-01-01T00:00:04Z", "2024-01-01T00:00:06Z", "2024-01-01T00:00:08Z", ""}},
		{"after the start skips the start", "R5/2024-01-01T00:00:00Z/PT2S", "", "2024-01-01T00:00:00Z",
			[]string{"2024-01-01T00:00:02Z", "2024-01-01T00:00:04Z", "2024-01-01T00:00:06Z", "2024-01-01T00:00:08Z", ""}},
		{"R0 never runs", "R0/2024-01-01T00:00:00Z/PT2S", "", "2023-01-01T00:00:00Z", []string{""}},
		{"R1 runs once", "R1/2024-01-01T00:00:00Z/P1D", "", "2023-01-01T00:00:00Z", []string{"2024-01-01T00:00:00Z", ""}},
		{"open-ended, start long past: the first future run", "R/2000-01-01T00:00:00Z/PT1H", "", "2024-05-05T10:20:00Z",
			[]string{"2024-05-05T11:00:00Z", "2024-05-05T12:00:00Z"}},
		{"a past finite schedule has ended", "R3/2000-01-01T00:00:00Z/P1D", "", "2024-05-05T10:20:00Z", []string{""}},
		{"Chronos's example", "R/2014-03-08T20:00:00.000Z/PT2H", "", "2014-03-08T21:00:00Z",
			[]string{"2014-03-08T22:00:00Z", "2014-03-09T00:00:00Z"}},
		{"every form of duration", "R3/2024-01-01T00:00:00Z/P1Y2M10DT2H30M", "", "2023-01-01T00:00:00Z",
			[]string{"2024-01-01T00:00:00Z", "2025-03-11T02:30:00Z", "2026-05-21T05:00:00Z", ""}},
		{"weeks", "R/2024-01-01T00:00:00Z/P2W", "", "2024-01-01T00:00:00Z", []string{"2024-01-15T00:00:00Z", "2024-01-29T00:00:00Z"}},
		{"fractional seconds", "R/2024-01-01T00:00:00Z/PT0.5S", "", "2024-01-01T00:00:00Z", []string{"2024-01-01T00:00:00.5Z", "2024-01-01T00:00:01Z"}},
		{"fractional minutes with a comma", "R/2024-01-01T00:00:00Z/PT1,5M", "", "2024-01-01T00:00:00Z", []string{"2024-01-01T00:01:30Z"}},
		{"months keep the day, clamped to short months", "R/2024-01-31T00:00:00Z/P1M", "", "2024-01-31T00:00:00Z",
			[]string{"2024-02-29T00:00:00Z", "2024-03-31T00:00:00Z", "2024-04-30T00:00:00Z"}},
		{"a start offset without a zone", "R/2024-01-01T09:00:00+01:00/P1D", "", "2024-01-01T00:00:00Z", []string{"2024-01-01T08:00:00Z", "2024-01-02T08:00:00Z"}},
		{"a start without an offset is UTC", "R/2024-01-01T09:00:00/P1D", "", "2024-01-01T00:00:00Z", []string{"2024-01-01T09:00:00Z"}},
		{"a date alone", "R/2024-01-01/P1D", "", "2024-01-01T00:00:00Z", []string{"2024-01-02T00:00:00Z"}},
		{"the zone overrides the start's offset", "R/2024-01-01T09:00:00Z/P1D", "Europe/Paris", "2024-01-01T00:00:00Z", []string{"2024-01-01T08:00:00Z", "2024-01-02T08:00:00Z"}},
		// New York springs forward on 2024-03-10 at 02:00 EST to 03:00 EDT.
		{"daily 02:30 on a spring-forward day: once, at 03:00", "R/2024-03-09T02:30:00/P1D", "America/New_York", "2024-03-09T00:00:00Z",
			[]string{"2024-03-09T07:30:00Z", "2024-03-10T07:00:00Z", "2024-03-11T06:30:00Z"}},
		// New York falls back on 2024-11-03 at 02:00 EDT to 01:00 EST.
		{"daily 01:30 on a fall-back day: once, the first", "R/2024-11-02T01:30:00/P1D", "America/New_York", "2024-11-01T00:00:00Z",
			[]string{"2024-11-02T05:30:00Z", "2024-11-03T05:30:00Z", "2024-11-04T06:30:00Z"}},
		{"hours are elapsed time across a transition", "R/2024-03-10T01:00:00/PT1H", "America/New_York", "2024-03-10T00:00:00Z",
			[]string{"2024-03-10T06:00:00Z", "2024-03-10T07:00:00Z", "2024-03-10T08:00:00Z"}},
		{"the southern hemisphere springs forward in October", "R/2024-10-05T02:30:00/P1D", "Australia/Sydney", "2024-10-04T00:00:00Z",
			[]string{"2024-10-04T16:30:00Z", "2024-10-05T16:00:00Z", "2024-10-06T15:30:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var loc *time.Location
			if tt.zone != "" {
				loc = mustZone(t, tt.zone)
			}
			iv, err := ParseISO8601(tt.expr, loc, now)
			if err != nil {
				t.Fatal(err)
			}
			got := runs(iv, mustTime(t, tt.after), len(tt.want))
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("runs after %s:\n got %q\nwant %q", tt.after, got, tt.want)
			}
		})
	}
}

func TestISO8601EmptyStartIsNow(t *testing.T) {
	now := mustTime(t, "2024-05-05T10:20:00.25Z")
	iv, err := ParseISO8601("R2//PT10S", nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if !iv.Start.Equal(now) {
		t.Errorf("start %v, want %v", iv.Start, now)
	}
	got := runs(iv, now.Add(-time.Nanosecond), 3)
	want := []string{"2024-05-05T10:20:00.25Z", "2024-05-05T10:20:10.25Z", ""}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("runs %q, want %q", got, want)
	}
	if s := iv.String(); s != "R2/2024-05-05T10:20:00.250Z/PT10S" {
		t.Errorf("String() = %q", s)
	}
	ny := mustZone(t, "America/New_York")
	iv, err = ParseISO8601("R//P1D", ny, now)
	if err != nil {
		t.Fatal(err)
	}
	if s := iv.String(); s != "R/2024-05-05T06:20:00.250-04:00/P1D" {
		t.Errorf("String() in New York = %q", s)
	}
}

func TestISO8601Errors(t *testing.T) {
	tests := []struct{ expr, want string }{
		{"", "three parts"},
		{"R5/2024-01-01T00:00:00Z", "three parts"},
		{"X/2024-01-01T00:00:00Z/P1D", "repetitions"},
		{"R-1/2024-01-01T00:00:00Z/P1D", "repetitions"},
		{"R1x/2024-01-01T00:00:00Z/P1D", "repetitions"},
		{"R99999999999999999999/2024-01-01T00:00:00Z/P1D", "at most"},
		{"R/yesterday/P1D", "start"},
		{"R/2024-13-01T00:00:00Z/P1D", "start"},
		{"R/2024-01-01T00:00:00Z/1D", "period"},
		{"R/2024-01-01T00:00:00Z/P", "period"},
		{"R/2024-01-01T00:00:00Z/PT", "period"},
		{"R/2024-01-01T00:00:00Z/P1DT", "nothing after T"},
		{"R/2024-01-01T00:00:00Z/P0D", "longer than zero"},
		{"R/2024-01-01T00:00:00Z/PT0S", "longer than zero"},
		{"R/2024-01-01T00:00:00Z/P1.5D", "whole numbers"},
		{"R/2024-01-01T00:00:00Z/P1D1Y", "out of place"},
		{"R/2024-01-01T00:00:00Z/P1H", "out of place"},
		{"R/2024-01-01T00:00:00Z/PT1D", "out of place"},
		{"R/2024-01-01T00:00:00Z/PTH", "number before each unit"},
		{"R/2024-01-01T00:00:00Z/P1..2D", "bad number"},
		{"R/2024-01-01T00:00:00Z/P1D2", "number before each unit"},
	}
	for _, tt := range tests {
		_, err := ParseISO8601(tt.expr, nil, time.Now())
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseISO8601(%q) = %v, want an error with %q", tt.expr, err, tt.want)
		}
	}
}

func TestLoadLocation(t *testing.T) {
	if loc, err := LoadLocation(""); err != nil || loc != time.UTC {
		t.Errorf(`LoadLocation("") = %v, %v`, loc, err)
	}
	if _, err := LoadLocation("Mars/Olympus_Mons"); err == nil || !strings.Contains(err.Error(), "IANA") {
		t.Errorf("an unknown zone: %v", err)
	}
}

func TestCron(t *testing.T) {
	tests := []struct {
		name, expr, zone, after string
		want                    []string
	}{
		{"every 15 minutes", "*/15 * * * *", "", "2024-05-05T10:07:30Z", []string{"2024-05-05T10:15:00Z", "2024-05-05T10:30:00Z", "2024-05-05T10:45:00Z", "2024-05-05T11:00:00Z"}},
		{"strictly after", "*/15 * * * *", "", "2024-05-05T10:15:00Z", []string{"2024-05-05T10:30:00Z"}},
		{"a list and a range with a step", "5,10-20/5 8 * * *", "", "2024-05-05T08:06:00Z", []string{"2024-05-05T08:10:00Z", "2024-05-05T08:15:00Z", "2024-05-05T08:20:00Z", "2024-05-06T08:05:00Z"}},
		{"start/step runs to the end of the field", "50/5 * * * *", "", "2024-05-05T08:00:00Z", []string{"2024-05-05T08:50:00Z", "2024-05-05T08:55:00Z", "2024-05-05T09:50:00Z"}},
		{"weekdays by name", "0 9 * * MON-FRI", "", "2024-05-03T10:00:00Z", []string{"2024-05-06T09:00:00Z", "2024-05-07T09:00:00Z"}},
		{"months by name", "0 0 1 jan,Jul *", "", "2024-05-05T00:00:00Z", []string{"2024-07-01T00:00:00Z", "2025-01-01T00:00:00Z"}},
		{"Sunday is 7 too", "0 0 * * 7", "", "2024-05-05T00:00:00Z", []string{"2024-05-12T00:00:00Z"}},
		{"both day fields restricted: either", "0 0 13 * FRI", "", "2024-09-01T00:00:00Z", []string{"2024-09-06T00:00:00Z", "2024-09-13T00:00:00Z", "2024-09-20T00:00:00Z"}},
		{"day of week alone", "0 0 * * FRI", "", "2024-09-01T00:00:00Z", []string{"2024-09-06T00:00:00Z", "2024-09-13T00:00:00Z"}},
		{"day of month alone", "0 0 13 * ?", "", "2024-09-01T00:00:00Z", []string{"2024-09-13T00:00:00Z", "2024-10-13T00:00:00Z"}},
		{"a starred day of week with a step leaves it to day of month", "0 0 13 * */2", "", "2024-09-01T00:00:00Z", []string{"2024-10-13T00:00:00Z"}},
		{"leap days", "0 0 29 2 *", "", "2024-03-01T00:00:00Z", []string{"2028-02-29T00:00:00Z"}},
		{"never: February 30th", "0 0 30 2 *", "", "2024-01-01T00:00:00Z", []string{""}},
		{"@yearly", "@yearly", "", "2024-05-05T00:00:00Z", []string{"2025-01-01T00:00:00Z"}},
		{"@annually", "@annually", "", "2024-05-05T00:00:00Z", []string{"2025-01-01T00:00:00Z"}},
		{"@monthly", "@monthly", "", "2024-05-05T00:00:00Z", []string{"2024-06-01T00:00:00Z"}},
		{"@weekly", "@weekly", "", "2024-05-05T00:00:00Z", []string{"2024-05-12T00:00:00Z"}},
		{"@daily", "@daily", "", "2024-05-05T00:00:00Z", []string{"2024-05-06T00:00:00Z"}},
		{"@midnight", "@Midnight", "", "2024-05-05T00:00:00Z", []string{"2024-05-06T00:00:00Z"}},
		{"@hourly", "@hourly", "", "2024-05-05T00:00:00Z", []string{"2024-05-05T01:00:00Z"}},
		{"in a zone", "0 9 * * *", "Asia/Tokyo", "2024-05-05T00:00:00Z", []string{"2024-05-05T00:00:00Z", "2024-05-06T00:00:00Z"}[1:]},
		{"in a zone, same day", "0 9 * * *", "Asia/Tokyo", "2024-05-04T23:00:00Z", []string{"2024-05-05T00:00:00Z"}},
		// New York springs forward on 2024-03-10 at 02:00 EST to 03:00 EDT.
		{"02:30 on a spring-forward day: once, at 03:00", "30 2 * * *", "America/New_York", "2024-03-09T12:00:00Z",
			[]string{"2024-03-10T07:00:00Z", "2024-03-11T06:30:00Z"}},
		{"every 15 minutes through a spring-forward: the skipped hour runs once", "*/15 * * * *", "America/New_York", "2024-03-10T06:40:00Z",
			[]string{"2024-03-10T06:45:00Z", "2024-03-10T07:00:00Z", "2024-03-10T07:15:00Z"}},
		// New York falls back on 2024-11-03 at 02:00 EDT to 01:00 EST.
		{"01:30 on a fall-back day: once, the first", "30 1 * * *", "America/New_York", "2024-11-02T12:00:00Z",
			[]string{"2024-11-03T05:30:00Z", "2024-11-04T06:30:00Z"}},
		{"every 30 minutes runs in both passes of the repeated hour", "*/30 * * * *", "America/New_York", "2024-11-03T05:10:00Z",
			[]string{"2024-11-03T05:30:00Z", "2024-11-03T06:00:00Z", "2024-11-03T06:30:00Z", "2024-11-03T07:00:00Z"}},
		{"a fixed hour in the repeated hour, asked during the second pass", "45 1 * * *", "America/New_York", "2024-11-03T06:10:00Z",
			[]string{"2024-11-04T06:45:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var loc *time.Location
			if tt.zone != "" {
				loc = mustZone(t, tt.zone)
			}
			c, err := ParseCron(tt.expr, loc)
			if err != nil {
				t.Fatal(err)
			}
			got := runs(c, mustTime(t, tt.after), len(tt.want))
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("runs after %s:\n got %q\nwant %q", tt.after, got, tt.want)
			}
		})
	}
}

func TestCronErrors(t *testing.T) {
	tests := []struct{ expr, want string }{
		{"", "want 5 fields"},
		{"* * * *", "want 5 fields"},
		{"* * * * * *", "want 5 fields"},
		{"@fortnightly", "unknown descriptor"},
		{"60 * * * *", "minute field \"60\": 60 is out of range 0-59"},
		{"* 24 * * *", "hour field"},
		{"* * 0 * *", "day of month field"},
		{"* * * 13 *", "month field"},
		{"* * * foo *", "nor a name"},
		{"* * * * 8", "day of week field"},
		{"5-1 * * * *", "ends before it starts"},
		{"*/0 * * * *", "step"},
		{"*/x * * * *", "step"},
		{"1,,2 * * * *", "not a number"},
		{"-5 * * * *", "not a number"},
		{"+5 * * * *", "not a number"},
		{"? * * * *", "not a number"},
	}
	for _, tt := range tests {
		_, err := ParseCron(tt.expr, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseCron(%q) = %v, want an error with %q", tt.expr, err, tt.want)
		}
	}
}

func FuzzISO8601(f *testing.F) {
	for _, s := range []string{"R/2014-03-08T20:00:00.000Z/PT2H", "R5//PT2S", "R0/2024-01-01/P1D", "R/2024-01-31T00:00:00Z/P1Y2M10DT2H30M", "R/2024-03-10T02:30:00/PT0.5S"} {
		f.Add(s, "America/New_York", int64(1710000000))
	}
	f.Fuzz(func(t *testing.T, expr, zone string, unix int64) {
		loc, err := LoadLocation(zone)
		if err != nil {
			loc = nil
		}
		now := time.Unix(unix%(1<<36), 0)
		iv, err := ParseISO8601(expr, loc, now)
		if err != nil {
			return
		}
		after := now
		for range 3 {
			next, ok := iv.Next(after)
			if !ok {
				return
			}
			if !next.After(after) {
				t.Fatalf("%q: Next(%v) = %v, not after it", expr, after, next)
			}
			after = next
		}
	})
}

func FuzzCron(f *testing.F) {
	for _, s := range []string{"*/15 * * * *", "0 9 * * MON-FRI", "0 0 13 * FRI", "@hourly", "30 2 * * *", "5,10-20/5 8 1-31/2 jan-jun 0-7"} {
		f.Add(s, "America/New_York", int64(1710000000))
	}
	f.Fuzz(func(t *testing.T, expr, zone string, unix int64) {
		loc, err := LoadLocation(zone)
		if err != nil {
			loc = nil
		}
		c, err := ParseCron(expr, loc)
		if err != nil {
			return
		}
		after := time.Unix(unix%(1<<36), 0)
		for range 3 {
			next, ok := c.Next(after)
			if !ok {
				return
			}
			if !next.After(after) {
				t.Fatalf("%q: Next(%v) = %v, not after it", expr, after, next)
			}
			after = next
		}
	})
}
