package cli

import (
	"strings"

	"github.com/atoll/atoll/api/marathon"
)

// The services framework serves the Marathon v2 API on the master port; marathon.Client
// speaks it for the app, deployment and group commands.

// newMarathonClient returns a client for the master at baseURL ("http://host:5050"),
// authenticated with token ("" sends none).
func newMarathonClient(baseURL, token string) *marathon.Client {
	return marathon.NewClient(baseURL, marathon.WithTimeout(requestTimeout), marathon.WithToken(token))
}

// marathon returns a client for the master the flags, the environment or the current
// context name.
func (a *app) marathon() (*marathon.Client, error) {
	addr, err := a.masterAddr()
	if err != nil {
		return nil, err
	}
	return newMarathonClient(addr, a.token()), nil
}

// canonicalID is an id as the API writes it: "/a/b".
func canonicalID(id string) string { return "/" + strings.Trim(id, "/") }
