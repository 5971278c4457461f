package schedule

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Cron is a 5-field cron schedule (minute, hour, day of month, month, day of week) in a
// time zone, with Vixie cron's rules: when both day fields are restricted a day matches
// either; a day field starting with '*' leaves the choice to the other.
//
// Daylight saving: a wall-clock time skipped by a spring-forward runs at the first valid
// time after it (once, however many skipped times match); in an hour a fall-back repeats,
// a schedule with a fixed hour runs once, at the first pass, and one that runs every
// hour runs in both passes, as Vixie cron does.
type Cron struct {
	minute, hour, dom, month, dow uint64
	// domStar and dowStar say the day fields start with '*'.
	domStar, dowStar bool
	// everyHour says the hour field matches every hour.
	everyHour bool
	// Location is the zone the fields are read in.
	Location *time.Location
	text     string
}

// The @ descriptors and their fields.
var cronDescriptors = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

// The fields' bounds and names.
var cronFields = []struct {
	name     string
	min, max int
	names    []string
}{
	{"minute", 0, 59, nil},
	{"hour", 0, 23, nil},
	{"day of month", 1, 31, nil},
	{"month", 1, 12, []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{"day of week", 0, 7, []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

// ParseCron parses a cron expression read in loc (nil is UTC): five fields, each '*', a
// number or name, a range a-b, any of those with a step /n, or a comma-separated list of
// them; '?' is '*' in the day fields; day of week 7 is Sunday. Or one of @yearly
// (@annually), @monthly, @weekly, @daily (@midnight), @hourly.
func ParseCron(expr string, loc *time.Location) (*Cron, error) {
	if loc == nil {
		loc = time.UTC
	}
	text := strings.TrimSpace(expr)
	if strings.HasPrefix(text, "@") {
		fields, ok := cronDescriptors[strings.ToLower(text)]
		if !ok {
			return nil, fmt.Errorf("cron %q: unknown descriptor (want @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)", expr)
		}
		text = fields
	}
	fields := strings.Fields(text)
	if len(fields) != 5 {
		return nil, fmt.Errorf("cron %q: want 5 fields (minute hour day-of-month month day-of-week), got %d", expr, len(fields))
	}
	c := &Cron{Location: loc, text: expr}
	sets := []*uint64{&c.minute, &c.hour, &c.dom, &c.month, &c.dow}
	for i, field := range fields {
		if (i == 2 || i == 4) && field == "?" {
			field = "*"
		}
		set, err := parseCronField(field, i)
		if err != nil {
			return nil, fmt.Errorf("cron %q: %s field %q: %w", expr, cronFields[i].name, field, err)
		}
		*sets[i] = set
	}
	// Sunday is 0 and 7.
	if c.dow&(1<<7) != 0 {
		c.dow = c.dow&^(1<<7) | 1
	}
	c.domStar = strings.HasPrefix(fields[2], "*") || fields[2] == "?"
	c.dowStar = strings.HasPrefix(fields[4], "*") || fields[4] == "?"
	c.everyHour = c.hour == 1<<24-1
	return c, nil
}

// String returns the expression as written.
func (c *Cron) String() string { return c.text }

func parseCronField(field string, index int) (uint64, error) {
	spec := cronFields[index]
	var set uint64
	for _, item := range strings.Split(field, ",") {
		rangePart, stepPart, hasStep := strings.Cut(item, "/")
		lo, hi := spec.min, spec.max
		switch {
		case rangePart == "*":
			if index == 4 {
				hi = 6
			}
		default:
			a, b, isRange := strings.Cut(rangePart, "-")
			var err error
			if lo, err = cronValue(a, index); err != nil {
				return 0, err
			}
			hi = lo
			if isRange {
				if hi, err = cronValue(b, index); err != nil {
					return 0, err
				}
				if hi < lo {
					return 0, fmt.Errorf("range %s-%s ends before it starts", a, b)
				}
			} else if hasStep {
				// "5/15" is "5-max/15".
				hi = spec.max
				if index == 4 {
					hi = 6
				}
			}
		}
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepPart)
			if err != nil || n < 1 || n > spec.max+1 {
				return 0, fmt.Errorf("step %q: want a number from 1 to %d", stepPart, spec.max+1)
			}
			step = n
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << v
		}
	}
	return set, nil
}

// cronValue parses one number or name of a field.
func cronValue(s string, index int) (int, error) {
	spec := cronFields[index]
	for i, name := range spec.names {
		if strings.EqualFold(s, name) {
			if index == 3 {
				return i + 1, nil
			}
			return i, nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || s == "" || s[0] == '+' || s[0] == '-' {
		if spec.names != nil {
			return 0, fmt.Errorf("%q is not a number from %d to %d nor a name (%s)", s, spec.min, spec.max, strings.Join(spec.names, ", "))
		}
		return 0, fmt.Errorf("%q is not a number from %d to %d", s, spec.min, spec.max)
	}
	if n < spec.min || n > spec.max {
		return 0, fmt.Errorf("%d is out of range %d-%d", n, spec.min, spec.max)
	}
	return n, nil
}

// dayMatches applies Vixie cron's day rule to a wall-clock date.
func (c *Cron) dayMatches(w wall) bool {
	dom := c.dom&(1<<w.Day()) != 0
	dow := c.dow&(1<<int(w.Weekday())) != 0
	switch {
	case c.domStar || c.dowStar:
		return dom && dow
	default:
		return dom || dow
	}
}

// cronHorizon bounds the search: a schedule that matches no date within it (February
// 30th) never runs.
const cronHorizon = 8

// Next returns the first run strictly after after.
func (c *Cron) Next(after time.Time) (time.Time, bool) {
	loc := c.Location
	w := wallOf(after, loc).Truncate(time.Minute)
	// Near a fall-back, wall clock and time disagree in order: a wall time before after's
	// may be the second pass of the repeated hour, after after. Search from two hours of
	// wall clock earlier (no zone moves its clock by more), and keep the earliest run
	// found until the wall clock is two hours past it.
	_, before := after.Add(-3 * time.Hour).In(loc).Zone()
	_, later := after.Add(3 * time.Hour).In(loc).Zone()
	near := before != later
	if near {
		w = w.Add(-2 * time.Hour)
	}
	var best time.Time
	limit := w.Year() + cronHorizon
	for w.Year() <= limit {
		if !best.IsZero() && (!near || w.After(wallOf(best, loc).Add(2*time.Hour))) {
			return best, true
		}
		switch {
		case c.month&(1<<int(w.Month())) == 0:
			w = time.Date(w.Year(), w.Month()+1, 1, 0, 0, 0, 0, time.UTC)
			continue
		case !c.dayMatches(w):
			w = time.Date(w.Year(), w.Month(), w.Day()+1, 0, 0, 0, 0, time.UTC)
			continue
		case c.hour&(1<<w.Hour()) == 0:
			w = time.Date(w.Year(), w.Month(), w.Day(), w.Hour()+1, 0, 0, 0, time.UTC)
			continue
		case c.minute&(1<<w.Minute()) == 0:
			// Jump to the next matching minute of this hour, or the next hour.
			rest := c.minute >> (w.Minute() + 1) << (w.Minute() + 1)
			if rest == 0 {
				w = time.Date(w.Year(), w.Month(), w.Day(), w.Hour()+1, 0, 0, 0, time.UTC)
			} else {
				w = time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), bits.TrailingZeros64(rest), 0, 0, time.UTC)
			}
			continue
		}
		instants := resolve(w, loc)
		if !c.everyHour {
			instants = instants[:1]
		}
		for _, t := range instants {
			if t.After(after) && (best.IsZero() || t.Before(best)) {
				best = t
			}
		}
		w = w.Add(time.Minute)
	}
	return best, !best.IsZero()
}

var _ Schedule = (*Cron)(nil)
