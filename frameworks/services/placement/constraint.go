package placement

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/atoll/atoll/api"
)

// Constraint operators, as Marathon spells them.
const (
	// Unique: no two instances share the field's value.
	Unique = "UNIQUE"
	// Cluster: every instance has the same value: Value when given, else the value of the
	// first placed instance (so the first launch pins it).
	Cluster = "CLUSTER"
	// GroupBy spreads instances evenly over the field's values. An optional integer Value
	// is the number of distinct values to spread over before any value gets a second
	// instance's worth more than the others.
	GroupBy = "GROUP_BY"
	// Like: the value matches the regular expression Value in full.
	Like = "LIKE"
	// Unlike: the value does not match the regular expression Value in full. It is the one
	// operator an agent lacking the field satisfies.
	Unlike = "UNLIKE"
	// MaxPer: at most Value (an integer ≥ 1) instances share a value.
	MaxPer = "MAX_PER"
	// Is: the value equals Value.
	Is = "IS"
)

// Fields with a meaning of their own; every other field names an agent attribute.
const (
	// FieldHostname (or plain "hostname") is the agent's hostname.
	FieldHostname = "@hostname"
	// FieldRegion is the agent's region. Atoll has no Mesos fault domains: by convention the
	// region is the agent attribute named "region".
	FieldRegion = "@region"
	// FieldZone is the agent's zone: by Atoll's convention the agent attribute "zone".
	FieldZone = "@zone"
)

// Constraint is one of an app's placement constraints, [field, operator, value].
//
// Attribute values compare as text, formatted as Marathon formats them: a TEXT attribute
// is its text, a SCALAR its number rounded to three decimals without trailing zeros or
// digit grouping ("3", "2.5"), RANGES "[1-10,20-30]" sorted by begin, SET "{a,b}" sorted.
// An agent without the field satisfies only UNLIKE.
//
// LIKE and UNLIKE use Go's regular expression syntax (RE2): Java-only constructs such as
// look-arounds and back-references are rejected by ParseConstraint.
type Constraint struct {
	Field, Operator, Value string
	// re is the compiled, anchored LIKE/UNLIKE pattern; ParseConstraint sets it so that
	// matching does not compile it again. Constraints written as literals compile when used.
	re *regexp.Regexp
}

// ParseConstraint validates one constraint as it appears in an app definition:
// [field, operator] or [field, operator, value]. Its errors say what is wrong in words fit
// for the details of a 422 response.
func ParseConstraint(parts []string) (Constraint, error) {
	if len(parts) < 2 || len(parts) > 3 {
		return Constraint{}, errors.New("each constraint must have either 2 or 3 fields")
	}
	c := Constraint{Field: parts[0], Operator: parts[1]}
	if len(parts) == 3 {
		c.Value = parts[2]
	}
	if c.Field == "" {
		return Constraint{}, errors.New("constraint field is empty")
	}
	prepared, err := prepare(c)
	if err != nil {
		return Constraint{}, err
	}
	c.re = prepared.re
	return c, nil
}

// String formats c as Marathon's field:OPERATOR[:value] shorthand.
func (c Constraint) String() string {
	if c.Value == "" {
		return c.Field + ":" + c.Operator
	}
	return c.Field + ":" + c.Operator + ":" + c.Value
}

// prepared is a constraint checked and ready to evaluate.
type prepared struct {
	Constraint
	attribute string // attribute name, "" for the hostname
	limit     int    // MAX_PER's maximum, GROUP_BY's minimum number of groups
}

// prepare checks c's operator and value and compiles what evaluation needs.
func prepare(c Constraint) (prepared, error) {
	p := prepared{Constraint: c}
	switch c.Field {
	case "hostname", FieldHostname:
	case FieldRegion:
		p.attribute = "region"
	case FieldZone:
		p.attribute = "zone"
	default:
		p.attribute = c.Field
	}
	switch c.Operator {
	case Unique:
		if c.Value != "" {
			return prepared{}, errors.New("UNIQUE takes no value, but one was specified")
		}
	case Cluster:
	case GroupBy:
		if c.Value != "" {
			n, err := strconv.ParseInt(c.Value, 10, 32)
			if err != nil {
				return prepared{}, fmt.Errorf("GROUP_BY may either have no value or an integer value, not %q", c.Value)
			}
			p.limit = max(int(n), 0)
		}
	case MaxPer:
		n, err := strconv.ParseInt(c.Value, 10, 32)
		if err != nil {
			return prepared{}, fmt.Errorf("MAX_PER must have an integer value, not %q", c.Value)
		}
		if n < 1 {
			return prepared{}, fmt.Errorf("MAX_PER must be at least 1, not %d", n)
		}
		p.limit = int(n)
	case Like, Unlike:
		if c.Value == "" {
			return prepared{}, fmt.Errorf("%s needs a regular expression value", c.Operator)
		}
		anchored := `\A(?:` + c.Value + `)\z`
		if c.re != nil && c.re.String() == anchored {
			break
		}
		// The pattern must compile on its own first: wrapped in a group, an unbalanced
		// pattern such as "a)|(b" would compile to something other than a full match.
		if _, err := regexp.Compile(c.Value); err != nil {
			return prepared{}, fmt.Errorf("%q is not a valid regular expression: %v", c.Value, err)
		}
		re, err := regexp.Compile(anchored)
		if err != nil {
			return prepared{}, fmt.Errorf("%q is not a valid regular expression: %v", c.Value, err)
		}
		p.re = re
	case Is:
		if c.Value == "" {
			return prepared{}, errors.New("IS requires a value")
		}
	default:
		return prepared{}, fmt.Errorf("constraint operator must be one of UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER or IS, not %q", c.Operator)
	}
	return p, nil
}

// fieldValue reads the constraint's field from an agent, reporting whether it has one.
func (p *prepared) fieldValue(hostname string, attrs []api.Attribute) (string, bool) {
	if p.attribute == "" {
		return hostname, true
	}
	for i := range attrs {
		if attrs[i].Name == p.attribute {
			return attributeValue(&attrs[i])
		}
	}
	return "", false
}

// attributeValue formats an attribute's value for comparison; malformed attributes (a type
// without its value) count as absent.
func attributeValue(a *api.Attribute) (string, bool) {
	switch a.Type {
	case api.Text:
		if a.Text == nil {
			return "", false
		}
		return a.Text.Value, true
	case api.Scalar:
		if a.Scalar == nil || math.IsNaN(a.Scalar.Value) || math.IsInf(a.Scalar.Value, 0) {
			return "", false
		}
		return strconv.FormatFloat(math.Round(a.Scalar.Value*1000)/1000, 'f', -1, 64), true
	case api.Ranges:
		if a.Ranges == nil {
			return "", false
		}
		ranges := slices.Clone(a.Ranges.Range)
		slices.SortStableFunc(ranges, func(x, y api.ValueRange) int { return cmp.Compare(x.Begin, y.Begin) })
		var b strings.Builder
		b.WriteByte('[')
		for i, r := range ranges {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%d-%d", r.Begin, r.End)
		}
		b.WriteByte(']')
		return b.String(), true
	case api.Set:
		if a.Set == nil {
			return "", false
		}
		return "{" + strings.Join(slices.Sorted(slices.Values(a.Set.Item)), ",") + "}", true
	}
	return "", false
}

// groupKey is a field value of a placed instance; instances lacking the field form a group
// of their own, as in Marathon.
type groupKey struct {
	value   string
	missing bool
}

// tally is one constraint together with what the placed instances contribute to it: how
// many instances have each value, kept up to date as instances are placed, so that an offer
// is judged in time independent of the number of placed instances.
type tally struct {
	prepared
	broken bool // a constraint that does not validate never holds

	placed   int
	first    groupKey  // value of the first placed instance (CLUSTER without a value)
	focus    *groupKey // UNIQUE, MAX_PER: count only this value, that of the one offer judged
	counts   map[groupKey]int
	perCount map[int]int // GROUP_BY: how many groups hold each count
	minCount int         // GROUP_BY: the smallest group's count
}

func newTally(c Constraint) tally {
	p, err := prepare(c)
	if err != nil {
		return tally{prepared: prepared{Constraint: c}, broken: true}
	}
	t := tally{prepared: p}
	switch c.Operator {
	case Unique, MaxPer:
		t.counts = map[groupKey]int{}
	case GroupBy:
		t.counts = map[groupKey]int{}
		t.perCount = map[int]int{}
	}
	return t
}

// add counts one more placed instance on an agent with the given field value.
func (t *tally) add(value string, ok bool) {
	key := groupKey{value: value, missing: !ok}
	if t.placed == 0 {
		t.first = key
	}
	t.placed++
	if t.counts == nil || t.focus != nil && key != *t.focus {
		return
	}
	n := t.counts[key]
	t.counts[key] = n + 1
	if t.perCount == nil {
		return
	}
	if n > 0 {
		t.perCount[n]--
	}
	t.perCount[n+1]++
	switch {
	case n == 0:
		t.minCount = 1
	case n == t.minCount && t.perCount[n] == 0:
		t.minCount = n + 1
	}
}

// holds reports whether an agent with the given field value satisfies the constraint.
func (t *tally) holds(value string, ok bool) bool {
	if t.broken {
		return false
	}
	if !ok {
		return t.Operator == Unlike
	}
	key := groupKey{value: value}
	switch t.Operator {
	case Unique:
		return t.counts[key] == 0
	case MaxPer:
		return t.counts[key] < t.limit
	case GroupBy:
		n, found := t.counts[key]
		return !found || len(t.counts) >= t.limit && n == t.minCount
	case Cluster:
		if t.Value != "" {
			return value == t.Value
		}
		return t.placed == 0 || t.first == key
	case Like:
		return t.re.MatchString(value)
	case Unlike:
		return !t.re.MatchString(value)
	case Is:
		return value == t.Value
	}
	return false
}
