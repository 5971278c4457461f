package node

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
)

// startMasterNode runs a master node on loopback; it is ready once a leader exists.
func startMasterNode(t *testing.T, name string, gossipPort int, join []string) testNode {
	t.Helper()
	cfg := loopbackConfig(t, name)
	cfg.Master = true
	cfg.BootstrapExpect = 3
	cfg.GossipPort = gossipPort
	cfg.Join = join
	cfg.DeadServerTimeout = time.Second
	return startRun(t, cfg)
}

func raftVoters(client *api.Client) (string, error) {
	peers, err := client.RaftPeers(context.Background())
	if err != nil {
		return "", err
	}
	var addrs []string
	for _, s := range peers.Servers {
		if s.Suffrage == api.RaftVoter {
			addrs = append(addrs, s.Address)
		}
	}
	sort.Strings(addrs)
	return strings.Join(addrs, ","), nil
}

func waitVoters(t *testing.T, client *api.Client, want int) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := raftVoters(client)
		if err == nil && len(strings.Split(got, ",")) == want && got != "" {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("raft voters %q (%v), want %d", got, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRaftMembershipFollowsGossip: three masters bootstrap one Raft group; a fourth that
// only --joins is added as a voter (it must not bootstrap a group of its own); once it has
// been gone past the dead-server timeout the leader removes it.
func TestRaftMembershipFollowsGossip(t *testing.T) {
	port := freeGossipPort(t)
	seed := []string{fmt.Sprintf("127.0.0.1:%d", port)}
	n1 := startMasterNode(t, "m1", port, nil)
	n2 := startMasterNode(t, "m2", 0, seed)
	n3 := startMasterNode(t, "m3", 0, seed)
	m1 := n1.info(t)
	n2.info(t)
	n3.info(t)
	client := api.NewClient(m1.APIURL)
	three := waitVoters(t, client, 3)

	n4 := startMasterNode(t, "m4", 0, seed)
	n4.info(t)
	if four := waitVoters(t, client, 4); four == three {
		t.Fatalf("voters with m4 %q, before %q", four, three)
	}
	n4.stop()
	if got := waitVoters(t, client, 3); got != three {
		t.Fatalf("voters after m4 left: %q, want the original %q", got, three)
	}
	// The cluster still writes: the leader answers a framework subscription.
	s, err := client.Subscribe(context.Background(), api.FrameworkInfo{User: "root", Name: "after-m4"}, nil)
	if err != nil {
		t.Fatalf("subscribe after m4 left: %v", err)
	}
	defer s.Close()
	if ev, err := s.Next(); err != nil || ev.Type != api.EventSubscribed {
		t.Fatalf("first event %+v, %v", ev, err)
	}
}
