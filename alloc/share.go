package alloc

import (
	"cmp"
	"slices"

	"github.com/atoll/atoll/api"
)

// quantities sums the scalar resources DRF shares are computed over, in thousandths.
// Ranges and sets take no part in shares, as in Mesos.
type quantities struct {
	fixed  [4]int64 // cpus, mem, disk, gpus
	custom []namedQuantity
}

type namedQuantity struct {
	name  string
	milli int64
}

func (q *quantities) add(r Resources) { q.update(r, 1) }
func (q *quantities) sub(r Resources) { q.update(r, -1) }

func (q *quantities) update(r Resources, sign int64) {
	q.fixed[0] += sign * r.cpus
	q.fixed[1] += sign * r.mem
	q.fixed[2] += sign * r.disk
	q.fixed[3] += sign * r.gpus
	for _, e := range r.extra {
		if e.kind != api.Scalar {
			continue
		}
		i, found := slices.BinarySearchFunc(q.custom, e.name, func(n namedQuantity, name string) int {
			return cmp.Compare(n.name, name)
		})
		if !found {
			q.custom = slices.Insert(q.custom, i, namedQuantity{name: e.name})
		}
		q.custom[i].milli += sign * e.scalar
	}
}

func (q *quantities) get(name string) int64 {
	for _, c := range q.custom {
		if c.name == name {
			return c.milli
		}
	}
	return 0
}

// dominantShare is the largest fraction of total that q holds of any one resource.
func (q *quantities) dominantShare(total *quantities) float64 {
	var share float64
	for i, v := range q.fixed {
		if t := total.fixed[i]; v > 0 && t > 0 {
			share = max(share, float64(v)/float64(t))
		}
	}
	for _, c := range q.custom {
		if t := total.get(c.name); c.milli > 0 && t > 0 {
			share = max(share, float64(c.milli)/float64(t))
		}
	}
	return share
}
