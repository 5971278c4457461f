package placement

import (
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

func TestSummary(t *testing.T) {
	s := NewSummary(100)
	for _, r := range []struct {
		agent  string
		reason Reason
		after  time.Duration
	}{
		{"a", InsufficientCpus, 0},
		{"b", UnfulfilledConstraint, time.Second},
		{"a", InsufficientPorts, 2 * time.Second},
		{"c", Matched, 3 * time.Second},
		{"b", InsufficientCpus, 4 * time.Second},
	} {
		s.Record(r.agent, r.reason, t0.Add(r.after))
	}
	// Every offer: 5 processed, 1 used; declined cpus 2, constraint 1, ports 1.
	// Last offer per agent: a ports, b cpus, c used.
	want := `{"processedOffersCount":5,"unusedOffersCount":4,` +
		`"lastUnusedOfferAt":"2024-01-02T03:04:09Z","lastUsedOfferAt":"2024-01-02T03:04:08Z",` +
		`"rejectSummaryLastOffers":[` +
		`{"reason":"UnfulfilledRole","declined":0,"processed":3},` +
		`{"reason":"UnfulfilledConstraint","declined":0,"processed":3},` +
		`{"reason":"NoCorrespondingReservationFound","declined":0,"processed":3},` +
		`{"reason":"InsufficientCpus","declined":1,"processed":3},` +
		`{"reason":"InsufficientMemory","declined":0,"processed":2},` +
		`{"reason":"InsufficientDisk","declined":0,"processed":2},` +
		`{"reason":"InsufficientGpus","declined":0,"processed":2},` +
		`{"reason":"InsufficientPorts","declined":1,"processed":2}],` +
		`"rejectSummaryLaunchAttempt":[` +
		`{"reason":"UnfulfilledRole","declined":0,"processed":5},` +
		`{"reason":"UnfulfilledConstraint","declined":1,"processed":5},` +
		`{"reason":"NoCorrespondingReservationFound","declined":0,"processed":4},` +
		`{"reason":"InsufficientCpus","declined":2,"processed":4},` +
		`{"reason":"InsufficientMemory","declined":0,"processed":2},` +
		`{"reason":"InsufficientDisk","declined":0,"processed":2},` +
		`{"reason":"InsufficientGpus","declined":0,"processed":2},` +
		`{"reason":"InsufficientPorts","declined":1,"processed":2}]}`
	if got := asJSON(t, s.Snapshot()); got != want {
		t.Errorf("snapshot\n got %s\nwant %s", got, want)
	}
}

func TestSummaryEmpty(t *testing.T) {
	want := `{"processedOffersCount":0,"unusedOffersCount":0,"rejectSummaryLastOffers":[` +
		`{"reason":"UnfulfilledRole","declined":0,"processed":0},` +
		`{"reason":"UnfulfilledConstraint","declined":0,"processed":0},` +
		`{"reason":"NoCorrespondingReservationFound","declined":0,"processed":0},` +
		`{"reason":"InsufficientCpus","declined":0,"processed":0},` +
		`{"reason":"InsufficientMemory","declined":0,"processed":0},` +
		`{"reason":"InsufficientDisk","declined":0,"processed":0},` +
		`{"reason":"InsufficientGpus","declined":0,"processed":0},` +
		`{"reason":"InsufficientPorts","declined":0,"processed":0}],"rejectSummaryLaunchAttempt":[` +
		`{"reason":"UnfulfilledRole","declined":0,"processed":0},` +
		`{"reason":"UnfulfilledConstraint","declined":0,"processed":0},` +
		`{"reason":"NoCorrespondingReservationFound","declined":0,"processed":0},` +
		`{"reason":"InsufficientCpus","declined":0,"processed":0},` +
		`{"reason":"InsufficientMemory","declined":0,"processed":0},` +
		`{"reason":"InsufficientDisk","declined":0,"processed":0},` +
		`{"reason":"InsufficientGpus","declined":0,"processed":0},` +
		`{"reason":"InsufficientPorts","declined":0,"processed":0}]}`
	if got := asJSON(t, NewSummary(10).Snapshot()); got != want {
		t.Errorf("snapshot\n got %s\nwant %s", got, want)
	}
}

// TestSummaryForgetsOldestAgent: the last-offers funnel covers at most maxAgents agents,
// dropping the one heard from longest ago.
func TestSummaryForgetsOldestAgent(t *testing.T) {
	s := NewSummary(2)
	s.Record("a", InsufficientCpus, t0)
	s.Record("b", InsufficientMemory, t0.Add(time.Second))
	s.Record("b", InsufficientDisk, t0.Add(2*time.Second)) // known agent: nothing forgotten
	s.Record("c", InsufficientGpus, t0.Add(3*time.Second)) // forgets a
	got := s.Snapshot()
	declined := map[Reason]int{}
	for _, step := range got.RejectSummaryLastOffers {
		declined[step.Reason] = step.Declined
	}
	if first := got.RejectSummaryLastOffers[0]; first.Processed != 2 {
		t.Errorf("last offers processed = %d, want 2", first.Processed)
	}
	if declined[InsufficientCpus] != 0 || declined[InsufficientMemory] != 0 || declined[InsufficientDisk] != 1 || declined[InsufficientGpus] != 1 {
		t.Errorf("last offers declined = %v, want disk 1 and gpus 1", declined)
	}
	if got.ProcessedOffersCount != 4 || got.RejectSummaryLaunchAttempt[3].Declined != 1 {
		t.Errorf("launch attempt = %+v, want 4 processed and 1 cpus declined", got)
	}
}

func TestSummaryConcurrent(t *testing.T) {
	s := NewSummary(1000)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				reason := InsufficientPorts
				if i%2 == 0 {
					reason = Matched
				}
				s.Record(string(rune('a'+g)), reason, t0.Add(time.Duration(i)*time.Millisecond))
				s.Snapshot()
			}
		}()
	}
	wg.Wait()
	got := s.Snapshot()
	if got.ProcessedOffersCount != 800 || got.UnusedOffersCount != 400 || got.RejectSummaryLastOffers[0].Processed != 8 {
		t.Errorf("after 8×100 records: %+v", got)
	}
}
