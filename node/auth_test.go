package node

import (
	"net/http"
	"testing"
	"time"
)

// TestMasterAuth: a node's master with Auth hands its first admin token to AdminToken,
// and then requires tokens on its API, the Mesos-DNS API it serves included, but not on
// /health.
func TestMasterAuth(t *testing.T) {
	cfg := loopbackConfig(t, "m1")
	cfg.Master, cfg.BootstrapExpect, cfg.Auth = true, 1, true
	admins := make(chan string, 1)
	cfg.AdminToken = func(token string) { admins <- token }
	info := runNode(t, cfg)
	var admin string
	select {
	case admin = <-admins:
	case <-time.After(30 * time.Second):
		t.Fatal("no admin token within 30s")
	}
	for _, tt := range []struct {
		path, token string
		want        int
	}{
		{"/health", "", http.StatusOK},
		{"/master/state", "", http.StatusUnauthorized},
		{"/master/state", admin, http.StatusOK},
		{"/v1/version", "", http.StatusUnauthorized},
		{"/v1/version", admin, http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodGet, info.APIURL+tt.path, nil)
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("GET %s (token %v): %s, want %d", tt.path, tt.token != "", resp.Status, tt.want)
		}
	}
}
