package marathon

// Group is a tree of apps (POST/PUT /v2/groups and GET's answer).
type Group struct {
	// ID is the group's path; "/" is the root group.
	ID     string   `json:"id"`
	Apps   []*App   `json:"apps"`
	Groups []*Group `json:"groups"`
	// Dependencies are app or group ids deployed before everything in this group.
	Dependencies []string `json:"dependencies"`
	Version      string   `json:"version,omitempty"`
	// EnforceRole makes the apps of a top-level group use the group's role.
	EnforceRole bool `json:"enforceRole,omitempty"`
}

// AllApps lists the apps of g and of its subgroups, depth first.
func (g *Group) AllApps() []*App {
	apps := append([]*App(nil), g.Apps...)
	for _, sub := range g.Groups {
		apps = append(apps, sub.AllApps()...)
	}
	return apps
}
