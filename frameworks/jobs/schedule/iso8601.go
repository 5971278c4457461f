package schedule

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Interval is an ISO 8601 repeating interval, Chronos's schedule: Repeat runs, the first
// at Start, each next one Period later.
//
// The period's years, months, weeks and days step the wall clock in the interval's zone
// (P1D keeps 02:30 at 02:30 across daylight-saving changes; P1M from the 31st lands on
// the last day of shorter months); its hours, minutes and seconds are elapsed time (PT1H
// is always an hour), as Chronos (Joda-Time) counts them.
type Interval struct {
	// Repeat is how many runs there are; -1 is forever ("R"), 0 never ("R0").
	Repeat int64
	// Start is the first run.
	Start time.Time
	// Period is the time between runs.
	Period Period
	// Location is the zone the wall clock is stepped in.
	Location *time.Location
}

// Period is an ISO 8601 duration.
type Period struct {
	// Years, Months and Days step the calendar (a week is seven days).
	Years, Months, Days int
	// Elapsed is the hours, minutes and seconds part.
	Elapsed time.Duration
	// text is the duration as written.
	text string
}

// String returns the duration as it was written.
func (p Period) String() string { return p.text }

// approx is the period's rough length, for estimating how many periods fit in a span.
func (p Period) approx() time.Duration {
	const day = 24 * time.Hour
	return time.Duration(float64(p.Years)*365.2425*float64(day) + float64(p.Months)*30.436875*float64(day) + float64(p.Days)*float64(day) + float64(p.Elapsed))
}

// maxRepeat bounds Rn: far more runs than any job makes, small enough that counts never
// overflow.
const maxRepeat = 1 << 40

// ParseISO8601 parses "R[n]/[start]/period". An empty start is now. loc, when not nil,
// is the job's scheduleTimeZone: the start's wall clock is read in it, whatever offset
// the start carries, and the calendar is stepped in it. Without loc the start's own
// offset is the zone (UTC when it has none).
func ParseISO8601(expr string, loc *time.Location, now time.Time) (*Interval, error) {
	parts := strings.Split(expr, "/")
	if len(parts) != 3 {
		return nil, fmt.Errorf("schedule %q: want R[n]/[start]/period, three parts separated by '/'", expr)
	}
	repeat, err := parseRepeat(parts[0])
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", expr, err)
	}
	period, err := ParsePeriod(parts[2])
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", expr, err)
	}
	iv := &Interval{Repeat: repeat, Period: period}
	switch {
	case parts[1] == "":
		iv.Start = now
		if loc != nil {
			iv.Start = now.In(loc)
		}
	default:
		start, hasZone, err := parseTimestamp(parts[1])
		if err != nil {
			return nil, fmt.Errorf("schedule %q: start: %w", expr, err)
		}
		switch {
		case loc != nil:
			iv.Start = resolve(wallOf(start, start.Location()), loc)[0]
		case hasZone:
			iv.Start = start
		default:
			iv.Start = start.UTC()
		}
	}
	iv.Location = iv.Start.Location()
	return iv, nil
}

// String renders the interval with its start, in its zone.
func (iv *Interval) String() string {
	r := "R"
	if iv.Repeat >= 0 {
		r += strconv.FormatInt(iv.Repeat, 10)
	}
	return r + "/" + iv.Start.Format("2006-01-02T15:04:05.000Z07:00") + "/" + iv.Period.String()
}

func parseRepeat(s string) (int64, error) {
	if s == "R" {
		return -1, nil
	}
	digits, ok := strings.CutPrefix(s, "R")
	if !ok || digits == "" || strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, fmt.Errorf("repetitions %q: want R (forever) or Rn with n a number", s)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > maxRepeat {
		return 0, fmt.Errorf("repetitions %q: at most R%d", s, int64(maxRepeat))
	}
	return n, nil
}

// The start layouts accepted: ISO 8601 extended dates and times, with or without
// fractional seconds, seconds, a time, or a zone.
var timestampLayouts = []string{
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999Z07",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02",
}

// parseTimestamp parses an ISO 8601 date-time; hasZone says it carried an offset or Z.
func parseTimestamp(s string) (time.Time, bool, error) {
	for i, layout := range timestampLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, i < 4, nil
		}
	}
	return time.Time{}, false, fmt.Errorf("%q is not an ISO 8601 date-time such as 2024-03-10T02:30:00Z", s)
}

// ParsePeriod parses an ISO 8601 duration, P[nY][nM][nW][nD][T[nH][nM][nS]]; the hours,
// minutes and seconds may have a fraction (PT0.5S). It must be longer than zero.
func ParsePeriod(s string) (Period, error) {
	p := Period{text: s}
	rest, ok := strings.CutPrefix(s, "P")
	if !ok || rest == "" || rest == "T" {
		return Period{}, fmt.Errorf("period %q: want an ISO 8601 duration such as P1D, PT2H or P1Y2M10DT2H30M", s)
	}
	date, clock, hasTime := strings.Cut(rest, "T")
	if hasTime && clock == "" {
		return Period{}, fmt.Errorf("period %q: nothing after T", s)
	}
	var elapsed float64
	for _, part := range []struct {
		text  string
		units string
	}{{date, "YMWD"}, {clock, "HMS"}} {
		text, order := part.text, part.units
		for text != "" {
			end := strings.IndexFunc(text, func(r rune) bool { return (r < '0' || r > '9') && r != '.' && r != ',' })
			if end <= 0 {
				return Period{}, fmt.Errorf("period %q: want a number before each unit", s)
			}
			number := strings.ReplaceAll(text[:end], ",", ".")
			unit := text[end]
			at := strings.IndexByte(order, unit)
			if at < 0 {
				return Period{}, fmt.Errorf("period %q: unit %q out of place (the order is Y M W D, then T H M S)", s, unit)
			}
			order = order[at+1:]
			text = text[end+1:]
			value, err := strconv.ParseFloat(number, 64)
			if err != nil || math.IsInf(value, 0) || value > 1e9 {
				return Period{}, fmt.Errorf("period %q: bad number %q", s, number)
			}
			whole := value == math.Trunc(value)
			if part.units == "YMWD" {
				if !whole {
					return Period{}, fmt.Errorf("period %q: years, months, weeks and days must be whole numbers", s)
				}
				switch unit {
				case 'Y':
					p.Years = int(value)
				case 'M':
					p.Months = int(value)
				case 'W':
					p.Days += 7 * int(value)
				case 'D':
					p.Days += int(value)
				}
				continue
			}
			seconds := map[byte]float64{'H': 3600, 'M': 60, 'S': 1}[unit]
			elapsed += value * seconds
		}
	}
	if elapsed*float64(time.Second) > float64(math.MaxInt64/2) {
		return Period{}, fmt.Errorf("period %q: too long", s)
	}
	p.Elapsed = time.Duration(elapsed * float64(time.Second))
	if p.Years == 0 && p.Months == 0 && p.Days == 0 && p.Elapsed <= 0 {
		return Period{}, fmt.Errorf("period %q: must be longer than zero", s)
	}
	if p.Years > 10000 || p.Months > 120000 || p.Days > 3660000 {
		return Period{}, fmt.Errorf("period %q: too long", s)
	}
	return p, nil
}

// errPastEnd ends the search for a run past the year 9999.
var errPastEnd = errors.New("past the year 9999")

// at returns run k (from 0).
func (iv *Interval) at(k int64) (time.Time, error) {
	if k == 0 {
		return iv.Start, nil
	}
	p := iv.Period
	t := iv.Start
	if p.Years != 0 || p.Months != 0 || p.Days != 0 {
		w := wallOf(iv.Start, iv.Location)
		months := int64(w.Month()-1) + k*(int64(p.Years)*12+int64(p.Months))
		days := k * int64(p.Days)
		if months/12 > 10000 || days > 3660000 {
			return time.Time{}, errPastEnd
		}
		year, month := w.Year()+int(months/12), time.Month(months%12+1)
		day := min(w.Day(), daysIn(year, month))
		w = time.Date(year, month, day, w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), time.UTC).AddDate(0, 0, int(days))
		t = resolve(w, iv.Location)[0]
	}
	if p.Elapsed != 0 {
		if k > math.MaxInt64/int64(p.Elapsed) {
			return time.Time{}, errPastEnd
		}
		t = t.Add(time.Duration(k) * p.Elapsed)
	}
	if t.Year() > 9999 {
		return time.Time{}, errPastEnd
	}
	return t, nil
}

func daysIn(year int, month time.Month) int {
	return time.Date(year, month+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// Next returns the first run strictly after after. Runs the schedule passed before after
// are skipped, not made up.
func (iv *Interval) Next(after time.Time) (time.Time, bool) {
	if iv.Repeat == 0 {
		return time.Time{}, false
	}
	var k int64
	if !after.Before(iv.Start) {
		if span, step := after.Sub(iv.Start), iv.Period.approx(); step > 0 {
			k = int64(span / step)
		}
	}
	// The estimate is off by a few runs at most (months and years vary in length);
	// step to the first run after after.
	for range 64 {
		if k <= 0 {
			break
		}
		t, err := iv.at(k)
		if err == nil && !t.After(after) {
			break
		}
		k--
	}
	for range 1 << 16 {
		if iv.Repeat >= 0 && k >= iv.Repeat {
			return time.Time{}, false
		}
		t, err := iv.at(k)
		if err != nil {
			return time.Time{}, false
		}
		if t.After(after) {
			return t, true
		}
		k++
	}
	return time.Time{}, false
}

var _ Schedule = (*Interval)(nil)
