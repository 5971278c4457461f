package master_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/node/master"
)

func stateServedBy(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, string(body)
	}
	var doc struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, doc.ID
}

// TestFollowerReads: a follower forwards reads to the leader, serves its own replica with
// ?stale=true, and without a leader answers 503 saying why — while stale reads still work.
func TestFollowerReads(t *testing.T) {
	c := master.NewTestCluster(t, 3)
	leader := c.Leader()
	follower := c.Followers()[0]

	if status, id := stateServedBy(t, follower.URL+"/master/state"); status != 200 || id != leader.ID() {
		t.Fatalf("follower /master/state: %d served by %q, want the leader %q", status, id, leader.ID())
	}
	if status, id := stateServedBy(t, follower.URL+"/master/state?stale=true"); status != 200 || id != follower.ID() {
		t.Fatalf("follower stale /master/state: %d served by %q, want itself %q", status, id, follower.ID())
	}
	status, body := post(t, follower.URL+"/api/v1", "application/json", "", `{"type":"GET_HEALTH"}`)
	if status != 200 || !strings.Contains(body, `"healthy":true`) {
		t.Fatalf("forwarded GET_HEALTH: %d %s", status, body)
	}

	// Two of three masters gone: no quorum, no leader.
	for _, s := range c.Servers {
		if s != follower {
			s.Stop()
		}
	}
	eventually(t, "no leader", func() error {
		if status, body := stateServedBy(t, follower.URL+"/master/state"); status != 503 || !strings.Contains(body, "no leading master") {
			return &unexpected{status, body}
		}
		return nil
	})
	if status, id := stateServedBy(t, follower.URL+"/master/state?stale=true"); status != 200 || id != follower.ID() {
		t.Fatalf("stale read without a leader: %d %q", status, id)
	}
	status, body = post(t, follower.URL+"/api/v1/scheduler", "application/json", "", `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n"}}}`)
	if status != 503 || !strings.Contains(body, "no leading master") {
		t.Fatalf("SUBSCRIBE without a leader: %d %q", status, body)
	}
}

type unexpected struct {
	status int
	body   string
}

func (u *unexpected) Error() string { return http.StatusText(u.status) + ": " + u.body }

// TestReadsWaitForLeaderState: a master Raft has just made leader serves no read until it
// has applied its predecessor's log (holds leader state), so a GET_STATE or an operator
// SUBSCRIBE never hands out a snapshot older than what the old leader's streams told.
func TestReadsWaitForLeaderState(t *testing.T) {
	c := master.NewTestCluster(t, 1)
	leader := c.Leader()
	type reply struct {
		status int
		body   string
		at     time.Time
	}
	replies := make(chan reply, 1)
	var restored time.Time
	leader.Master.WithoutLeaderState(func() {
		go func() {
			status, body := post(t, leader.URL+"/api/v1", "application/json", "", `{"type":"GET_STATE"}`)
			replies <- reply{status, body, time.Now()}
		}()
		select {
		case r := <-replies:
			t.Fatalf("GET_STATE answered %d %q before the leader held its state", r.status, r.body)
		case <-time.After(300 * time.Millisecond):
		}
		restored = time.Now()
	})
	r := <-replies
	if r.status != http.StatusOK || !strings.Contains(r.body, `"type":"GET_STATE"`) {
		t.Fatalf("GET_STATE once the leader holds its state: %d %q", r.status, r.body)
	}
	if r.at.Before(restored) {
		t.Fatalf("GET_STATE answered at %v, before the leader state came back at %v", r.at, restored)
	}
}
