package tui

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/atoll/atoll/api"
)

// age says how long ago t was, in the largest unit that fits: "12s", "5m", "3h", "2d";
// "-" for no time.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(0, int(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// ageSeconds is age's sort value.
func ageSeconds(now, t time.Time) float64 {
	if t.IsZero() {
		return -1
	}
	return now.Sub(t).Seconds()
}

// parseTime reads an API timestamp; the zero time when there is none.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// scalar sums the named scalar resource.
func scalar(resources []api.Resource, name string) float64 {
	var sum float64
	for _, r := range resources {
		if r.Name == name && r.Scalar != nil {
			sum += r.Scalar.Value
		}
	}
	return sum
}

// cpus formats a number of cpus: "0.5", "4".
func cpus(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// megabytes formats a size in MB: "512M", "4.0G", "1.5T".
func megabytes(mb float64) string {
	switch {
	case mb >= 1<<20:
		return fmt.Sprintf("%.1fT", mb/(1<<20))
	case mb >= 1<<10:
		return fmt.Sprintf("%.1fG", mb/(1<<10))
	}
	return fmt.Sprintf("%.0fM", mb)
}

// orDash is s, or "-" when empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// bar draws used out of total as a bar width cells wide: "[|||||.....]".
func bar(used, total float64, width int) string {
	inner := max(1, width-2)
	filled := 0
	if total > 0 {
		filled = int(used / total * float64(inner))
		if used > 0 && filled == 0 {
			filled = 1
		}
		filled = min(filled, inner)
	}
	return "[" + strings.Repeat("|", filled) + strings.Repeat(".", inner-filled) + "]"
}

// percent formats used out of total: "42%".
func percent(used, total float64) string {
	if total <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*used/total)
}

// plural says "1 task", "2 tasks".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
