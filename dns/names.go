package dns

import (
	"crypto/sha1"
	"encoding/binary"
	"slices"
	"strings"
)

// maxLabel is the longest DNS label (RFC 1035).
const maxLabel = 63

// maxName is the longest name in presentation form with its final dot.
const maxName = 254

// label turns s into an RFC 1123 label of at most max characters, as Mesos-DNS did:
// lowercase, every character other than an ASCII letter or digit becomes '-', and no '-'
// at either end. It is "" when nothing is left.
func label(s string, max int) string {
	b := make([]byte, 0, min(len(s), max+1))
	for _, r := range s {
		if len(b) > max {
			break
		}
		c := byte('-')
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			c = byte(r)
		case r >= 'A' && r <= 'Z':
			c = byte(r) + 'a' - 'A'
		}
		if c == '-' && len(b) == 0 {
			continue
		}
		b = append(b, c)
	}
	if len(b) > max {
		b = b[:max]
	}
	return strings.TrimRight(string(b), "-")
}

// taskLabel is the DNS label of a task name. A Marathon app id (/grp/web) folds its group
// path into the label (web-grp), as Marathon's own task names (web.grp) do once their dots
// become dashes.
func taskLabel(name string) string {
	if strings.HasPrefix(name, "/") {
		parts := strings.FieldsFunc(name, func(r rune) bool { return r == '/' })
		slices.Reverse(parts)
		name = strings.Join(parts, "-")
	}
	return label(name, maxLabel)
}

// zbase32 is the z-base-32 alphabet (human-oriented base 32).
const zbase32 = "ybndrfg8ejkmcpqxot1uwisza345h769"

// taskHash is the 5-character part of a task's canonical name: the first 25 bits of the
// SHA-1 of the task id in z-base-32, as Mesos-DNS made it.
func taskHash(taskID string) string {
	sum := sha1.Sum([]byte(taskID))
	v := binary.BigEndian.Uint32(sum[:4])
	var out [5]byte
	for i := range out {
		out[i] = zbase32[(v>>(27-5*i))&31]
	}
	return string(out[:])
}

// maxAgentTail bounds the agent part of a canonical name so the task part keeps room.
const maxAgentTail = 24

// agentTail is the agent part of a canonical name: the last '-' field of the agent id
// ("…-S3" gives "s3").
func agentTail(agentID string) string {
	if i := strings.LastIndexByte(agentID, '-'); i >= 0 {
		agentID = agentID[i+1:]
	}
	return label(agentID, maxAgentTail)
}

// canonicalLabel is a task's unique label <task>-<hash>-<agent>, the task part shortened
// to keep it within one label.
func canonicalLabel(task, hash, tail string) string {
	suffix := "-" + hash
	if tail != "" {
		suffix += "-" + tail
	}
	if room := maxLabel - len(suffix); len(task) > room {
		task = strings.TrimRight(task[:room], "-")
	}
	return task + suffix
}

// srvLabel is the service label "_<task>" of SRV names, within one label.
func srvLabel(l string) string {
	if len(l) > maxLabel-1 {
		l = strings.TrimRight(l[:maxLabel-1], "-")
	}
	return "_" + l
}
