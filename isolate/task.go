package isolate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/atoll/atoll/api"
)

// What every containerizer makes of a LaunchSpec: the checks of its sandbox, the task's
// environment and the user it runs as.

// checkSandbox rejects a sandbox that is not an existing directory's absolute path.
func checkSandbox(sandbox string) error {
	if !filepath.IsAbs(sandbox) {
		return fmt.Errorf("sandbox %q is not an absolute path", sandbox)
	}
	fi, err := os.Stat(sandbox)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("sandbox %s is not a directory", sandbox)
	}
	return nil
}

// envValue returns the value of the last "name=value" entry for name in env.
func envValue(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if value, ok := strings.CutPrefix(env[i], name+"="); ok {
			return value
		}
	}
	return ""
}

// defaultPath is the task's PATH when the agent has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// baseEnv picks the variables every task inherits from the agent's environment.
func baseEnv(agentEnv []string) []string {
	keep := []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR"}
	var env []string
	for _, name := range keep {
		for _, kv := range agentEnv {
			if strings.HasPrefix(kv, name+"=") {
				env = append(env, kv)
				break
			}
		}
	}
	if envValue(env, "PATH") == "" {
		env = append(env, "PATH="+defaultPath)
	}
	return env
}

// taskEnv layers the command's variables and then the agent's (spec.Env) over base; a
// later definition of a name replaces an earlier one in place.
func taskEnv(base []string, cmdEnv *api.Environment, extra []string) ([]string, error) {
	var env []string
	index := make(map[string]int)
	set := func(name, value string) {
		kv := name + "=" + value
		if i, ok := index[name]; ok {
			env[i] = kv
			return
		}
		index[name] = len(env)
		env = append(env, kv)
	}
	for _, kv := range base {
		name, value, _ := strings.Cut(kv, "=")
		set(name, value)
	}
	if cmdEnv != nil {
		for _, v := range cmdEnv.Variables {
			value := v.Value
			switch v.Type {
			case "", api.EnvValue:
			case api.EnvSecret:
				data, err := secretValue(v.Secret)
				if err != nil {
					return nil, fmt.Errorf("environment variable %q: %w", v.Name, err)
				}
				value = string(data)
			default:
				return nil, fmt.Errorf("environment variable %q: type %q is not supported", v.Name, v.Type)
			}
			if v.Name == "" || strings.ContainsAny(v.Name, "=\x00") || strings.ContainsRune(value, 0) {
				return nil, fmt.Errorf("environment variable %q: invalid", v.Name)
			}
			set(v.Name, value)
		}
	}
	if err := checkEnvEntries("environment entry", extra); err != nil {
		return nil, err
	}
	for _, kv := range extra {
		name, value, _ := strings.Cut(kv, "=")
		set(name, value)
	}
	return env, nil
}

// checkEnvEntries rejects entries that are not "NAME=value"; what names them in the error.
func checkEnvEntries(what string, entries []string) error {
	for _, kv := range entries {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || name == "" || strings.ContainsRune(kv, 0) {
			return fmt.Errorf("%s %q is not NAME=value", what, kv)
		}
	}
	return nil
}

// taskUser names the user a task runs as: its command's, else imageUser (the user of
// the task's image, if it has one), else its framework's; empty means the agent's own.
func taskUser(spec LaunchSpec, imageUser string) string {
	switch {
	case spec.Command.User != nil && *spec.Command.User != "":
		return *spec.Command.User
	case imageUser != "":
		return imageUser
	}
	return spec.FrameworkUser
}

// hostUser resolves the host user a task runs as, and the variables that name it (HOME,
// USER, LOGNAME). It returns a nil credential, and no variables, for the empty name and
// for the agent's own user, which need no switch.
func hostUser(name string) (*taskCredential, []string, error) {
	if name == "" {
		return nil, nil, nil
	}
	cred, home, err := lookupUser(name)
	if err != nil || cred == nil {
		return nil, nil, err
	}
	return cred, []string{"HOME=" + home, "USER=" + name, "LOGNAME=" + name}, nil
}

// lookupUser resolves the user a task should run as. It returns a nil credential when that
// is the agent's own user, which needs no switch.
func lookupUser(name string) (*taskCredential, string, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, "", fmt.Errorf("user %q: %w", name, err)
	}
	if u.Uid == strconv.Itoa(os.Getuid()) {
		return nil, "", nil
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, "", fmt.Errorf("user %q: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, "", fmt.Errorf("user %q: gid %q: %w", name, u.Gid, err)
	}
	cred := &taskCredential{UID: uint32(uid), GID: uint32(gid)}
	groups, err := u.GroupIds()
	if err != nil {
		return nil, "", fmt.Errorf("user %q: groups: %w", name, err)
	}
	for _, g := range groups {
		id, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return nil, "", fmt.Errorf("user %q: group %q: %w", name, g, err)
		}
		cred.Groups = append(cred.Groups, uint32(id))
	}
	return cred, u.HomeDir, nil
}

// prepareSandbox gives the sandbox, and the output files, to the task's user, as Mesos
// does, so the task can write there; the output files' rotations keep their owner. It
// lets the user reach the sandbox too (see grantSearch).
func prepareSandbox(sandbox, stdout, stderr string, cred *taskCredential) error {
	if err := grantSearch(sandbox, cred); err != nil {
		return err
	}
	for _, path := range []string{stdout, stderr} {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("create %s: %w", path, err)
		}
		f.Close()
	}
	err := filepath.WalkDir(sandbox, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(cred.UID), int(cred.GID))
	})
	if err != nil {
		return fmt.Errorf("give sandbox to uid %d: %w", cred.UID, err)
	}
	return nil
}

// grantSearch lets the task's user reach its sandbox by path, as a task running as a
// plain process must to start there: each directory above the sandbox that denies the
// user search permission gets the execute bit of the class the user falls in (owner,
// group or other), never read permission, as Mesos's world-searchable work dir gives
// it. The agent keeps its work dir in the node's private data dir, and tests in private
// temporary directories. Only directories of the agent's own user are changed: another
// user's keep their say (a runc container reaches its sandbox through a mount anyway).
func grantSearch(sandbox string, cred *taskCredential) error {
	euid := uint32(os.Geteuid())
	for dir := filepath.Dir(sandbox); ; dir = filepath.Dir(dir) {
		var st syscall.Stat_t
		if err := syscall.Stat(dir, &st); err != nil {
			return fmt.Errorf("let uid %d reach the sandbox: %w", cred.UID, &fs.PathError{Op: "stat", Path: dir, Err: err})
		}
		if bit := searchBit(&st, cred); st.Mode&bit == 0 && st.Uid == euid {
			if err := syscall.Chmod(dir, st.Mode&0o7777|bit); err != nil {
				return fmt.Errorf("let uid %d reach the sandbox: %w", cred.UID, &fs.PathError{Op: "chmod", Path: dir, Err: err})
			}
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

// searchBit is the permission bit that lets cred search the directory st describes:
// the owner's, the group's or the others' execute bit, whichever class cred is in.
func searchBit(st *syscall.Stat_t, cred *taskCredential) uint32 {
	switch {
	case st.Uid == cred.UID:
		return syscall.S_IXUSR
	case st.Gid == cred.GID || slices.Contains(cred.Groups, st.Gid):
		return syscall.S_IXGRP
	}
	return syscall.S_IXOTH
}

// secretValue is the content of a secret the task's framework resolved: a VALUE secret.
// A reference would need a secret store the agent could read, which it has not.
func secretValue(s *api.Secret) ([]byte, error) {
	switch {
	case s == nil:
		return nil, errors.New("a SECRET needs a secret")
	case s.Type == api.SecretValueType && s.Value != nil:
		return s.Value.Data, nil
	case s.Type == api.SecretReferenceType && s.Reference != nil:
		return nil, fmt.Errorf("secret %q is a reference, which the agent cannot resolve: the framework must send its value", s.Reference.Name)
	}
	return nil, fmt.Errorf("secret of type %q has no value", s.Type)
}
