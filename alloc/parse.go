package alloc

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/atoll/atoll/api"
)

// ParseResources parses resources in the Mesos agent flag syntax,
// "cpus:4;mem:8192;disk:1000;ports:[31000-32000,33000-33010];gpus:0;zones:{a,b}":
// name:value pairs separated by ';', where a value is a number (SCALAR), a list of
// begin-end ranges in brackets (RANGES) or a list of items in braces (SET). A name may
// carry the unreserved role, "cpus(*):4"; other roles are rejected. Like Mesos it also takes
// a JSON array of resources. Errors name the offending part.
func ParseResources(s string) (Resources, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "[") {
		var rs []api.Resource
		if err := json.Unmarshal([]byte(s), &rs); err != nil {
			return Resources{}, fmt.Errorf("parse resources as JSON: %w", err)
		}
		return FromProto(rs)
	}
	var b builder
	for part := range strings.SplitSeq(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		pr, err := parseOne(part)
		if err == nil {
			err = b.add(pr)
		}
		if err != nil {
			return Resources{}, fmt.Errorf("resource %q: %w", part, err)
		}
	}
	return b.out, nil
}

// parseOne turns "name:value" into a resource for builder.add to validate.
func parseOne(part string) (api.Resource, error) {
	name, value, ok := strings.Cut(part, ":")
	if !ok {
		return api.Resource{}, fmt.Errorf("want name:value")
	}
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if base, role, ok := strings.Cut(name, "("); ok {
		role, closed := strings.CutSuffix(role, ")")
		if !closed {
			return api.Resource{}, fmt.Errorf("role of %q lacks a closing parenthesis", base)
		}
		name = strings.TrimSpace(base)
		if role != "*" {
			return api.Resource{}, fmt.Errorf("reserved for role %q: reservations are not supported, only unreserved (role \"*\") resources", role)
		}
	}
	pr := api.Resource{Name: name}
	switch {
	case strings.HasPrefix(value, "["):
		inner, closed := strings.CutSuffix(value[1:], "]")
		if !closed {
			return api.Resource{}, fmt.Errorf("ranges %q lack a closing bracket", value)
		}
		ranges, err := parseRanges(inner)
		if err != nil {
			return api.Resource{}, err
		}
		pr.Type, pr.Ranges = api.Ranges, &api.ValueRanges{Range: ranges}
	case strings.HasPrefix(value, "{"):
		inner, closed := strings.CutSuffix(value[1:], "}")
		if !closed {
			return api.Resource{}, fmt.Errorf("set %q lacks a closing brace", value)
		}
		pr.Type, pr.Set = api.Set, &api.ValueSet{Item: splitList(inner)}
	default:
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return api.Resource{}, fmt.Errorf("scalar %q is not a number", value)
		}
		pr.Type, pr.Scalar = api.Scalar, &api.ValueScalar{Value: v}
	}
	return pr, nil
}

// splitList splits "a, b" at commas and trims the items; "" and blanks give no items.
func splitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	items := strings.Split(s, ",")
	for i := range items {
		items[i] = strings.TrimSpace(items[i])
	}
	return items
}

func parseRanges(s string) ([]api.ValueRange, error) {
	var out []api.ValueRange
	for _, item := range splitList(s) {
		begin, end, ok := strings.Cut(item, "-")
		if !ok {
			return nil, fmt.Errorf("range %q: want begin-end", item)
		}
		b, err := strconv.ParseUint(strings.TrimSpace(begin), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("range %q: begin is not a non-negative integer", item)
		}
		e, err := strconv.ParseUint(strings.TrimSpace(end), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("range %q: end is not a non-negative integer", item)
		}
		out = append(out, api.ValueRange{Begin: b, End: e})
	}
	return out, nil
}

// String formats r in the syntax ParseResources reads: cpus, mem, disk, gpus, ports, then
// custom resources by name, e.g. "cpus:4;mem:8192;ports:[31000-32000]". Empty gives "".
func (r Resources) String() string {
	var b strings.Builder
	sep := func() {
		if b.Len() > 0 {
			b.WriteByte(';')
		}
	}
	scalar := func(name string, milli int64) {
		if milli != 0 {
			sep()
			b.WriteString(name)
			b.WriteByte(':')
			b.WriteString(formatMilli(milli))
		}
	}
	scalar(CPUs, r.cpus)
	scalar(Mem, r.mem)
	scalar(Disk, r.disk)
	scalar(GPUs, r.gpus)
	if len(r.ports) > 0 {
		sep()
		b.WriteString(Ports + ":" + formatRanges(r.ports, ","))
	}
	for _, e := range r.extra {
		switch e.kind {
		case api.Scalar:
			scalar(e.name, e.scalar)
		case api.Ranges:
			sep()
			b.WriteString(e.name + ":" + formatRanges(e.ranges, ","))
		default:
			sep()
			b.WriteString(e.name + ":{" + strings.Join(e.set, ",") + "}")
		}
	}
	return b.String()
}

// formatMilli prints thousandths as an exact decimal: 4000 → "4", 1500 → "1.5".
func formatMilli(milli int64) string {
	s := strconv.FormatInt(milli/1000, 10)
	if frac := milli % 1000; frac != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%03d", frac), "0")
	}
	return s
}

// formatRanges prints ranges as Mesos does, "[31000-31005, 31010-31010]" with sep ", ".
func formatRanges(ranges []api.ValueRange, sep string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, rg := range ranges {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(strconv.FormatUint(rg.Begin, 10))
		b.WriteByte('-')
		b.WriteString(strconv.FormatUint(rg.End, 10))
	}
	b.WriteByte(']')
	return b.String()
}

// Flat returns r in the shape of /master/state: scalars as numbers, cpus, gpus, mem and disk
// always present, ranges as Mesos prints them ("[31000-32000, 33000-33010]") and sets as
// "{a, b}".
func (r Resources) Flat() map[string]any {
	out := map[string]any{
		CPUs: fromMilli(r.cpus),
		GPUs: fromMilli(r.gpus),
		Mem:  fromMilli(r.mem),
		Disk: fromMilli(r.disk),
	}
	if len(r.ports) > 0 {
		out[Ports] = formatRanges(r.ports, ", ")
	}
	for _, e := range r.extra {
		switch e.kind {
		case api.Scalar:
			out[e.name] = fromMilli(e.scalar)
		case api.Ranges:
			out[e.name] = formatRanges(e.ranges, ", ")
		default:
			out[e.name] = "{" + strings.Join(e.set, ", ") + "}"
		}
	}
	return out
}
