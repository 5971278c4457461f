package agent

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"

	"github.com/atoll/atoll/api"
)

// defaultTaskUser is DefaultConfig's TaskUser: nobody for an agent running as root, so
// that a task no one named a user for gets no power over the host; otherwise the agent's
// own user (empty), as it could switch to no other.
func defaultTaskUser() string {
	if os.Geteuid() == 0 {
		return "nobody"
	}
	return ""
}

// checkTaskUser reports a task user that does not exist on the host, or that the agent
// could not switch to.
func checkTaskUser(name string) error {
	if name == "" {
		return nil
	}
	u, err := user.Lookup(name)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		return fmt.Errorf("no user %q on this host", name)
	}
	if err != nil {
		return fmt.Errorf("user %q: %w", name, err)
	}
	if euid := os.Geteuid(); euid != 0 && u.Uid != strconv.Itoa(euid) {
		return fmt.Errorf("tasks can run as user %q only when the agent runs as root", name)
	}
	return nil
}

// frameworkUser is the user a task runs as when its command names none (see
// isolate.LaunchSpec.FrameworkUser): its framework's (framework), else the agent's
// TaskUser for a task on the host's filesystem. A task with an image that names no user
// runs as its image says: root inside its container, as under Docker.
func (c *Config) frameworkUser(framework string, container *api.ContainerInfo) string {
	if framework != "" || hasImage(container) {
		return framework
	}
	return c.TaskUser
}
