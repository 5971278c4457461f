package placement

import (
	"sync"
	"time"
)

// Summary accumulates how the offers shown to one app during one launch attempt were used:
// the processedOffersSummary of Marathon's /v2/queue. Marathon forgets the statistics when
// an app has nothing left to launch; start a new Summary for each launch attempt likewise.
// A Summary is safe for concurrent use.
type Summary struct {
	mu          sync.Mutex
	maxAgents   int
	processed   int
	unused      int
	lastUsed    time.Time
	lastUnused  time.Time
	declined    [lastDecline + 1]int // per reason, over the whole launch attempt
	lastByAgent map[string]agentOffer
}

// agentOffer is how the last offer from one agent was used.
type agentOffer struct {
	reason Reason
	at     time.Time
}

// NewSummary returns an empty Summary that remembers the last offer of at most maxAgents
// agents (at least one), forgetting the agent heard from longest ago when a new one comes.
func NewSummary(maxAgents int) *Summary {
	return &Summary{maxAgents: max(maxAgents, 1), lastByAgent: map[string]agentOffer{}}
}

// Record counts one offer from agentID processed at the given time: used when reason is
// Matched, declined for reason otherwise.
func (s *Summary) Record(agentID string, reason Reason, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.processed++
	if reason == Matched {
		s.lastUsed = at
	} else {
		s.unused++
		s.lastUnused = at
		if reason >= firstDecline && reason <= lastDecline {
			s.declined[reason]++
		}
	}
	if _, known := s.lastByAgent[agentID]; !known && len(s.lastByAgent) >= s.maxAgents {
		s.forgetOldestAgent()
	}
	s.lastByAgent[agentID] = agentOffer{reason: reason, at: at}
}

// forgetOldestAgent drops the agent whose last offer is the oldest. Caller holds s.mu.
func (s *Summary) forgetOldestAgent() {
	oldest, first := "", true
	for agent, o := range s.lastByAgent {
		if first || o.at.Before(s.lastByAgent[oldest].at) {
			oldest, first = agent, false
		}
	}
	delete(s.lastByAgent, oldest)
}

// OffersSummary is a Summary at one moment, with Marathon's JSON field names.
type OffersSummary struct {
	// ProcessedOffersCount counts the offers processed in this launch attempt.
	ProcessedOffersCount int `json:"processedOffersCount"`
	// UnusedOffersCount counts the offers of this launch attempt that were declined.
	UnusedOffersCount int `json:"unusedOffersCount"`
	// LastUnusedOfferAt is when the latest declined offer was processed (zero if none).
	LastUnusedOfferAt time.Time `json:"lastUnusedOfferAt,omitzero"`
	// LastUsedOfferAt is when the latest used offer was processed (zero if none).
	LastUsedOfferAt time.Time `json:"lastUsedOfferAt,omitzero"`
	// RejectSummaryLastOffers funnels the last offer of each agent: it starts with the
	// number of agents remembered and sheds, reason by reason, the offers declined for it;
	// what remains at the end were used.
	RejectSummaryLastOffers []DeclinedOfferStep `json:"rejectSummaryLastOffers"`
	// RejectSummaryLaunchAttempt funnels every offer of the launch attempt the same way,
	// starting with ProcessedOffersCount.
	RejectSummaryLaunchAttempt []DeclinedOfferStep `json:"rejectSummaryLaunchAttempt"`
}

// DeclinedOfferStep is one reason of the funnel: of Processed offers that reached it,
// Declined were declined for Reason.
type DeclinedOfferStep struct {
	Reason    Reason `json:"reason"`
	Declined  int    `json:"declined"`
	Processed int    `json:"processed"`
}

// Snapshot returns the counts so far. Both funnels list every reason of Marathon's, in its
// order, and Atoll's own where offers were declined for them.
func (s *Summary) Snapshot() OffersSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	var lastDeclined [lastDecline + 1]int
	for _, o := range s.lastByAgent {
		if o.reason >= firstDecline && o.reason <= lastDecline {
			lastDeclined[o.reason]++
		}
	}
	return OffersSummary{
		ProcessedOffersCount:       s.processed,
		UnusedOffersCount:          s.unused,
		LastUnusedOfferAt:          s.lastUnused,
		LastUsedOfferAt:            s.lastUsed,
		RejectSummaryLastOffers:    funnel(len(s.lastByAgent), &lastDeclined),
		RejectSummaryLaunchAttempt: funnel(s.processed, &s.declined),
	}
}

// funnel lists the reasons in order, each with the offers that reached it.
func funnel(processed int, declined *[lastDecline + 1]int) []DeclinedOfferStep {
	steps := make([]DeclinedOfferStep, 0, lastDecline-firstDecline+1)
	for r := firstDecline; r <= lastDecline; r++ {
		if atollReason(r) && declined[r] == 0 {
			continue
		}
		steps = append(steps, DeclinedOfferStep{Reason: r, Declined: declined[r], Processed: processed})
		processed -= declined[r]
	}
	return steps
}
