package agent

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/atoll/atoll/alloc"
	"github.com/atoll/atoll/api"
)

// Reserves kept back from auto-detected memory and disk for the host itself, as the Mesos
// agent does; each is at most half of the total so small hosts still offer something.
const (
	memReserveMB  = 1024
	diskReserveMB = 5 * 1024
	// defaultPorts is the Mesos agent's default port range.
	defaultPorts = "[31000-32000]"
)

// hostProbe measures what auto-detection needs; each function is called only when its
// resource is missing from the configured ones.
type hostProbe struct {
	cpus       func() int
	memTotalMB func() (float64, error)
	diskFreeMB func() (float64, error)
}

// systemProbe measures this host, with disk space taken under workDir.
func systemProbe(workDir string) hostProbe {
	return hostProbe{
		cpus: runtime.NumCPU,
		memTotalMB: func() (float64, error) {
			f, err := os.Open("/proc/meminfo")
			if err != nil {
				return 0, err
			}
			defer f.Close()
			kb, err := parseMemTotal(f)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo: %w", err)
			}
			return float64(kb) / 1024, nil
		},
		diskFreeMB: func() (float64, error) {
			var st syscall.Statfs_t
			if err := syscall.Statfs(workDir, &st); err != nil {
				return 0, fmt.Errorf("statfs %s: %w", workDir, err)
			}
			return float64(st.Bavail) * float64(st.Bsize) / (1 << 20), nil
		},
	}
}

// resolveResources returns the agent's total resources: spec, completed with detected
// values for the standard resources it does not name.
func resolveResources(spec string, probe hostProbe) (alloc.Resources, error) {
	spec = strings.TrimSpace(spec)
	var parts []string
	if spec != "" {
		if _, err := alloc.ParseResources(spec); err != nil {
			return alloc.Resources{}, err
		}
		parts = append(parts, spec)
	}
	named := resourceNames(spec)
	if !named[alloc.CPUs] {
		parts = append(parts, fmt.Sprintf("cpus:%d", probe.cpus()))
	}
	if !named[alloc.Mem] {
		total, err := probe.memTotalMB()
		if err != nil {
			return alloc.Resources{}, fmt.Errorf("detect mem (give it in the resources to skip detection): %w", err)
		}
		parts = append(parts, fmt.Sprintf("mem:%d", afterReserve(total, memReserveMB)))
	}
	if !named[alloc.Disk] {
		free, err := probe.diskFreeMB()
		if err != nil {
			return alloc.Resources{}, fmt.Errorf("detect disk (give it in the resources to skip detection): %w", err)
		}
		parts = append(parts, fmt.Sprintf("disk:%d", afterReserve(free, diskReserveMB)))
	}
	if !named[alloc.Ports] {
		parts = append(parts, "ports:"+defaultPorts)
	}
	return alloc.ParseResources(strings.Join(parts, ";"))
}

// resourceNames returns the names a valid resources spec gives, even with a zero amount
// ("disk:0" means no disk, not "detect it"). The spec is either flag syntax,
// "name(role):value;...", or a JSON array of resources.
func resourceNames(spec string) map[string]bool {
	names := map[string]bool{}
	if strings.HasPrefix(spec, "[") {
		var rs []api.Resource
		if json.Unmarshal([]byte(spec), &rs) == nil {
			for _, r := range rs {
				names[r.Name] = true
			}
		}
		return names
	}
	for entry := range strings.SplitSeq(spec, ";") {
		name, _, _ := strings.Cut(entry, ":")
		name, _, _ = strings.Cut(name, "(")
		if name = strings.TrimSpace(name); name != "" {
			names[name] = true
		}
	}
	return names
}

// afterReserve is total less reserve, but never less than half of total, in whole MB.
func afterReserve(total, reserve float64) int64 {
	if total <= 0 {
		return 0
	}
	return int64(math.Floor(max(total-reserve, total/2)))
}

// parseMemTotal returns the MemTotal line of /proc/meminfo, in kB.
func parseMemTotal(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("malformed MemTotal line %q", sc.Text())
		}
		kb, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed MemTotal value %q: %w", fields[0], err)
		}
		return kb, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no MemTotal line")
}

// parseAttributes parses "name:value;name:value" the way the Mesos agent's --attributes
// does: a value is RANGES when written "[a-b,c-d]", SET when "{x,y}", SCALAR when it is a
// finite number and TEXT otherwise. Empty entries are skipped.
func parseAttributes(s string) ([]api.Attribute, error) {
	var attrs []api.Attribute
	for entry := range strings.SplitSeq(s, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, value, ok := strings.Cut(entry, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" || value == "" {
			return nil, fmt.Errorf("attribute %q: want name:value", entry)
		}
		attr, err := parseAttributeValue(name, value)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", name, err)
		}
		attrs = append(attrs, attr)
	}
	return attrs, nil
}

func parseAttributeValue(name, value string) (api.Attribute, error) {
	switch {
	case strings.HasPrefix(value, "["):
		inner, ok := strings.CutSuffix(value[1:], "]")
		if !ok {
			return api.Attribute{}, fmt.Errorf("ranges %q: missing ']'", value)
		}
		ranges, err := parseRanges(inner)
		if err != nil {
			return api.Attribute{}, err
		}
		return api.Attribute{Name: name, Type: api.Ranges, Ranges: &api.ValueRanges{Range: ranges}}, nil
	case strings.HasPrefix(value, "{"):
		inner, ok := strings.CutSuffix(value[1:], "}")
		if !ok {
			return api.Attribute{}, fmt.Errorf("set %q: missing '}'", value)
		}
		items := []string{}
		for item := range strings.SplitSeq(inner, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		return api.Attribute{Name: name, Type: api.Set, Set: &api.ValueSet{Item: items}}, nil
	}
	if f, err := strconv.ParseFloat(value, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
		return api.Attribute{Name: name, Type: api.Scalar, Scalar: &api.ValueScalar{Value: f}}, nil
	}
	return api.Attribute{Name: name, Type: api.Text, Text: &api.ValueText{Value: value}}, nil
}

// parseRanges parses "a-b,c-d" (the inside of "[...]").
func parseRanges(s string) ([]api.ValueRange, error) {
	ranges := []api.ValueRange{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, ok := strings.Cut(part, "-")
		if !ok {
			return nil, fmt.Errorf("range %q: want begin-end", part)
		}
		begin, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("range %q: begin: %w", part, err)
		}
		end, err := strconv.ParseUint(strings.TrimSpace(hi), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("range %q: end: %w", part, err)
		}
		if begin > end {
			return nil, fmt.Errorf("range %q: begin is after end", part)
		}
		ranges = append(ranges, api.ValueRange{Begin: begin, End: end})
	}
	return ranges, nil
}
