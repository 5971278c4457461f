package node

import (
	"errors"
	"testing"

	"github.com/hashicorp/serf/serf"
)

// TestRetryKeyOp: a key operation is sent again only while members' answers are
// missing and none refused, at most keyAttempts times.
func TestRetryKeyOp(t *testing.T) {
	missing := func() (*serf.KeyResponse, error) {
		return &serf.KeyResponse{NumNodes: 3, NumResp: 2}, errors.New("2/3 nodes reported success")
	}
	refused := func() (*serf.KeyResponse, error) {
		return &serf.KeyResponse{NumNodes: 3, NumResp: 3, NumErr: 1}, errors.New("1/3 nodes reported failure")
	}
	unsent := func() (*serf.KeyResponse, error) {
		return &serf.KeyResponse{}, errors.New("illegal base64 data")
	}
	ok := func() (*serf.KeyResponse, error) { return &serf.KeyResponse{NumNodes: 3, NumResp: 3}, nil }
	for _, tc := range []struct {
		name    string
		answers []func() (*serf.KeyResponse, error)
		calls   int
		err     string
	}{
		{"every member answers", []func() (*serf.KeyResponse, error){ok}, 1, ""},
		{"an answer missed once", []func() (*serf.KeyResponse, error){missing, ok}, 2, ""},
		{"answers missed every time", []func() (*serf.KeyResponse, error){missing, missing, missing, ok}, keyAttempts, "2/3 nodes reported success"},
		{"a member refused", []func() (*serf.KeyResponse, error){refused, ok}, 1, "1/3 nodes reported failure"},
		{"never sent", []func() (*serf.KeyResponse, error){unsent, ok}, 1, "illegal base64 data"},
	} {
		calls := 0
		_, err := retryKeyOp(func() (*serf.KeyResponse, error) {
			calls++
			return tc.answers[calls-1]()
		})
		got := ""
		if err != nil {
			got = err.Error()
		}
		if calls != tc.calls || got != tc.err {
			t.Errorf("%s: %d calls, error %q; want %d, %q", tc.name, calls, got, tc.calls, tc.err)
		}
	}
}
