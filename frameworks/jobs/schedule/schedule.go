// Package schedule parses and evaluates the schedules of batch jobs: Chronos's ISO 8601
// repeating intervals ("R5/2024-03-10T02:30:00Z/P1D") and 5-field cron expressions, both
// in an IANA time zone, with daylight-saving transitions handled the same way for both:
// a wall-clock time that does not exist (skipped by a spring-forward) runs at the first
// valid time after it, and one that exists twice (repeated by a fall-back) runs once, at
// its first occurrence.
package schedule

import (
	"fmt"
	"time"
)

// Schedule yields a job's run times. Implementations are immutable and safe for
// concurrent use.
type Schedule interface {
	// Next returns the first run time strictly after after, and false when there is none
	// (the schedule ended, or it never runs).
	Next(after time.Time) (time.Time, bool)
}

// LoadLocation loads an IANA zone name; "" is UTC.
func LoadLocation(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: not a known IANA zone name", name)
	}
	return loc, nil
}

// wall is a wall-clock time without a zone, held as a UTC time so that its arithmetic
// never meets a daylight-saving transition.
type wall = time.Time

// wallOf returns t's wall clock in loc.
func wallOf(t time.Time, loc *time.Location) wall {
	t = t.In(loc)
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// resolve returns the instants whose wall clock in loc is w, earliest first: one
// normally, two when a fall-back repeats w. When a spring-forward skips w, it returns
// the transition, the first valid instant after w.
func resolve(w wall, loc *time.Location) []time.Time {
	// At most one transition lies within a day of w in any real zone: the offsets a day
	// before and a day after are the only candidates.
	_, before := w.Add(-24 * time.Hour).In(loc).Zone()
	_, after := w.Add(24 * time.Hour).In(loc).Zone()
	var out []time.Time
	for _, off := range []int{before, after} {
		t := w.Add(-time.Duration(off) * time.Second).In(loc)
		if wallOf(t, loc).Equal(w) && (len(out) == 0 || !out[0].Equal(t)) {
			out = append(out, t)
		}
	}
	if len(out) == 2 && out[1].Before(out[0]) {
		out[0], out[1] = out[1], out[0]
	}
	if len(out) > 0 {
		return out
	}
	// A gap: the transition lies between w read with the later offset and w read with the
	// earlier one. Find the first instant that has the later offset.
	lo := w.Add(-time.Duration(after) * time.Second)
	hi := w.Add(-time.Duration(before) * time.Second)
	if hi.Before(lo) {
		lo, hi = hi, lo
	}
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2)
		if _, off := mid.In(loc).Zone(); off == after {
			hi = mid
		} else {
			lo = mid
		}
	}
	return []time.Time{hi.Truncate(time.Second).In(loc)}
}
