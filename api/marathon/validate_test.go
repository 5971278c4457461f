package marathon

import (
	"encoding/json"
	"strings"
	"testing"
)

// validated decodes, normalises under "/" and validates an app.
func validated(tb testing.TB, js string) *Error {
	tb.Helper()
	return Validate(normalized(tb, js, "/"))
}

func TestValidateAccepts(t *testing.T) {
	for _, js := range []string{
		`{"id": "a", "cmd": "x"}`,
		`{"id": "a", "args": ["x"]}`,
		`{"id": "a", "container": {"docker": {"image": "i"}}}`,
		`{"id": "a", "cmd": "x", "networks": [{"mode": "container", "name": "dcos"}]}`,
		`{"id": "a", "cmd": "x", "secrets": {"s": {"source": "/db"}}, "env": {"P": {"secret": "s"}}, "container": {"type": "MESOS", "volumes": [{"containerPath": "f", "secret": "s"}]}}`,
		`{"id": "a", "cmd": "x", "container": {"type": "MESOS", "volumes": [{"containerPath": "data", "mode": "RW", "persistent": {"size": 10}}, {"containerPath": "/var/lib/data", "hostPath": "data", "mode": "RW"}]}}`,
		`{"id": "a", "cmd": "x", "container": {"type": "MESOS", "volumes": [{"containerPath": "data", "mode": "RW", "external": {"name": "v", "provider": "dvdi", "options": {"dvdi/driver": "pxd"}}}]}}`,
		`{"id": "a", "container": {"type": "MESOS", "docker": {"image": "i"}}}`,
		`{"id": "/a.b-c/d0", "cmd": "x", "instances": 0, "mem": 0, "cpus": 0.001, "executor": "//cmd"}`,
		`{"id": "a", "cmd": "x", "constraints": [["@hostname", "UNIQUE"], ["rack", "CLUSTER", "r1"], ["rack", "GROUP_BY"], ["rack", "GROUP_BY", "3"],
			["@zone", "LIKE", "us-.*"], ["@region", "UNLIKE", "eu"], ["rack", "MAX_PER", "2"], ["os", "IS", "linux"]]}`,
		`{"id": "a", "cmd": "x", "labels": {"MARATHON_SINGLE_INSTANCE_APP": "true"}, "upgradeStrategy": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0}}`,
		`{"id": "a", "cmd": "x", "unreachableStrategy": {"inactiveAfterSeconds": 60, "expungeAfterSeconds": 60}}`,
		`{"id": "a", "cmd": "x", "resourceLimits": {"cpus": "unlimited", "mem": 256}}`,
		`{"id": "a", "cmd": "x", "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"}}, {"protocol": "COMMAND", "command": {"value": "true"}}, {"protocol": "MESOS_TCP"}]}`,
		`{"id": "a", "cmd": "x", "env": {"ANY NAME": "v"}, "tty": true, "role": "web"}`,
		`{"id": "a", "cmd": "x", "check": {"http": {"portIndex": 0, "path": "/v1/health", "scheme": "HTTP"}, "intervalSeconds": 30, "timeoutSeconds": 20, "delaySeconds": 15}}`,
		`{"id": "a", "cmd": "x", "portDefinitions": [], "check": {"tcp": {"port": 8080}, "timeoutSeconds": 0, "delaySeconds": 0}}`,
		`{"id": "a", "cmd": "x", "portDefinitions": [], "check": {"exec": {"command": {"argv": ["test", "-e", "ready"]}}}}`,
		`{"id": "a", "networks": [{"mode": "container/bridge"}], "container": {"docker": {"image": "i"}, "portMappings": [{"containerPort": 80}, {"containerPort": 81}]},
			"check": {"tcp": {"portIndex": 1}}}`,
	} {
		if e := validated(t, js); e != nil {
			t.Errorf("%s: %v", js, e)
		}
	}
}

func TestValidateRules(t *testing.T) {
	tests := []struct {
		name string
		json string
		want []ErrorDetail
	}{
		// id
		{"no id", `{"cmd": "x"}`, []ErrorDetail{{"/id", []string{"error.path.missing"}}}},
		{"root id", `{"id": "/", "cmd": "x"}`, []ErrorDetail{{"/id", []string{msgRoot}}}},
		{"uppercase id", `{"id": "/Web", "cmd": "x"}`, []ErrorDetail{{"/id", []string{"must fully match regular expression '" + idSegmentPattern + "'"}}}},
		{"dash at the end", `{"id": "/web-", "cmd": "x"}`, []ErrorDetail{{"/id", []string{"must fully match regular expression '" + idSegmentPattern + "'"}}}},
		{"reserved keyword", `{"id": "/a/tasks", "cmd": "x"}`, []ErrorDetail{{"/id", []string{msgReserved}}}},
		// command
		{"cmd and args", `{"id": "a", "cmd": "x", "args": ["y"]}`, []ErrorDetail{{"/", []string{msgCmdArgs}}}},
		{"neither cmd nor image", `{"id": "a", "container": {"type": "MESOS"}}`, []ErrorDetail{{"/", []string{msgCmdArgs}}}},
		// resources and backoff
		{"cpus", `{"id": "a", "cmd": "x", "cpus": 0}`, []ErrorDetail{{"/cpus", []string{"got 0.0, expected 0.001 or more"}}}},
		{"mem", `{"id": "a", "cmd": "x", "mem": -1}`, []ErrorDetail{{"/mem", []string{"got -1.0, expected 0.0 or more"}}}},
		{"disk", `{"id": "a", "cmd": "x", "disk": -0.5}`, []ErrorDetail{{"/disk", []string{"got -0.5, expected 0.0 or more"}}}},
		{"instances", `{"id": "a", "cmd": "x", "instances": -1}`, []ErrorDetail{{"/instances", []string{"got -1, expected 0 or more"}}}},
		{"gpus", `{"id": "a", "cmd": "x", "gpus": 1}`, []ErrorDetail{{"/gpus", []string{msgGpus}}}},
		{"negative gpus", `{"id": "a", "cmd": "x", "gpus": -1}`, []ErrorDetail{{"/gpus", []string{"got -1, expected 0 or more"}}}},
		{"backoff", `{"id": "a", "cmd": "x", "backoffSeconds": -1, "backoffFactor": 0.5, "maxLaunchDelaySeconds": -2}`, []ErrorDetail{
			{"/backoffSeconds", []string{"got -1, expected 0 or more"}},
			{"/backoffFactor", []string{"got 0.5, expected 1.0 or more"}},
			{"/maxLaunchDelaySeconds", []string{"got -2, expected 0 or more"}},
		}},
		{"kill grace period", `{"id": "a", "cmd": "x", "taskKillGracePeriodSeconds": -1}`, []ErrorDetail{{"/taskKillGracePeriodSeconds", []string{"got -1, expected 0 or more"}}}},
		{"executor", `{"id": "a", "cmd": "x", "executor": "/opt/exec"}`, []ErrorDetail{{"/executor", []string{msgExecutor}}}},
		{"resource limits", `{"id": "a", "cmd": "x", "cpus": 2, "resourceLimits": {"cpus": 1, "mem": 64}}`, []ErrorDetail{
			{"/resourceLimits/cpus", []string{"got 1.0, expected 2.0 or more"}},
			{"/resourceLimits/mem", []string{"got 64.0, expected 128.0 or more"}},
		}},
		// strategies
		{"upgrade strategy", `{"id": "a", "cmd": "x", "upgradeStrategy": {"minimumHealthCapacity": 1.5, "maximumOverCapacity": -0.1}}`, []ErrorDetail{
			{"/upgradeStrategy/minimumHealthCapacity", []string{"is greater than 1"}},
			{"/upgradeStrategy/maximumOverCapacity", []string{"is less than 0"}},
		}},
		{"kill selection", `{"id": "a", "cmd": "x", "killSelection": "RANDOM"}`, []ErrorDetail{
			{"/killSelection", []string{`unknown value "RANDOM": must be one of YOUNGEST_FIRST, OLDEST_FIRST`}}}},
		{"unreachable strategy", `{"id": "a", "cmd": "x", "unreachableStrategy": {"inactiveAfterSeconds": 600, "expungeAfterSeconds": 300}}`, []ErrorDetail{
			{"/unreachableStrategy/inactiveAfterSeconds", []string{msgInactiveExpunge}}}},
		{"unreachable strategy negative", `{"id": "a", "cmd": "x", "unreachableStrategy": {"inactiveAfterSeconds": -1, "expungeAfterSeconds": -1}}`, []ErrorDetail{
			{"/unreachableStrategy/inactiveAfterSeconds", []string{"got -1, expected 0 or more"}},
			{"/unreachableStrategy/expungeAfterSeconds", []string{"got -1, expected 0 or more"}},
		}},
		// constraints
		{"constraints", `{"id": "a", "cmd": "x", "constraints": [[], ["hostname"], ["a", "UNIQUE", "x"], ["a", "CLUSTER"], ["a", "IS"],
			["a", "GROUP_BY", "x"], ["a", "LIKE"], ["a", "UNLIKE", "("], ["a", "MAX_PER"], ["a", "MAX_PER", "two"], ["a", "NEAR", "b"], ["a", "LIKE", "b", "c"]]}`,
			[]ErrorDetail{
				{"/constraints/0", []string{"Missing field and operator"}},
				{"/constraints/1", []string{"illegal constraint specification hostname"}},
				{"/constraints/2", []string{"Value specified but not used"}},
				{"/constraints/3", []string{"Missing value"}},
				{"/constraints/4", []string{"Missing value"}},
				{"/constraints/5", []string{"Value was specified but is not a number"}},
				{"/constraints/6", []string{"A regular expression value must be provided"}},
				{"/constraints/7", []string{"'(' is not a valid regular expression"}},
				{"/constraints/8", []string{"Missing value"}},
				{"/constraints/9", []string{"Value was specified but is not a number"}},
				{"/constraints/10", []string{"illegal constraint operator NEAR"}},
				{"/constraints/11", []string{"illegal constraint specification a,LIKE,b,c"}},
			}},
		// secrets
		{"secrets", `{"id": "a", "cmd": "x", "secrets": {"s": {"source": "/db"}, "t": {"source": ""}}, "env": {"A": "1", "P": {"secret": "s"}, "Q": {"secret": "u"}},
			"container": {"type": "MESOS", "volumes": [{"containerPath": "f", "secret": "s"}, {"containerPath": "g", "secret": "v"}]}}`, []ErrorDetail{
			{"/secrets/t/source", []string{msgNotEmpty}},
			{"/env/Q", []string{`secret "u" is not declared in the app's secrets`}},
			{"/container/volumes/1/secret", []string{`secret "v" is not declared in the app's secrets`}},
		}},
		// labels
		{"single instance", `{"id": "a", "cmd": "x", "instances": 2, "labels": {"MARATHON_SINGLE_INSTANCE_APP": "true"}}`, []ErrorDetail{
			{"/instances", []string{msgSingleInstance}},
			{"/upgradeStrategy/minimumHealthCapacity", []string{"got 1.0, expected 0.0"}},
			{"/upgradeStrategy/maximumOverCapacity", []string{"got 1.0, expected 0.0"}},
		}},
		{"migration API", `{"id": "a", "cmd": "x", "labels": {"DCOS_MIGRATION_API_VERSION": "v1", "DCOS_PACKAGE_FRAMEWORK_NAME": "f"}}`, []ErrorDetail{
			{"/labels", []string{msgMigrationAPI}}}},
		// dependencies, fetch, roles
		{"dependency", `{"id": "a", "cmd": "x", "dependencies": ["/B"]}`, []ErrorDetail{
			{"/dependencies/0", []string{"must fully match regular expression '" + idSegmentPattern + "'"}}}},
		{"fetch uri", `{"id": "a", "cmd": "x", "fetch": [{"uri": ""}]}`, []ErrorDetail{{"/fetch/0/uri", []string{msgNotEmpty}}}},
		{"role", `{"id": "a", "cmd": "x", "acceptedResourceRoles": ["*", ""]}`, []ErrorDetail{{"/acceptedResourceRoles/1", []string{msgNotEmpty}}}},
		// networks
		{"network mode", `{"id": "a", "cmd": "x", "networks": [{"mode": "overlay"}]}`, []ErrorDetail{
			{"/networks/0/mode", []string{`unknown value "overlay": must be one of host, container/bridge, container`}},
			{"/networks", []string{msgNetworkMix}},
		}},
		{"container networks", `{"id": "a", "cmd": "x", "networks": [{"mode": "container"}, {"mode": "container"}]}`, []ErrorDetail{
			{"/networks/0/name", []string{msgNetworkName}},
			{"/networks/1/name", []string{msgNetworkName}},
			{"/networks", []string{msgDuplicateNets}},
		}},
		{"host network with a name", `{"id": "a", "cmd": "x", "networks": [{"mode": "host", "name": "n", "labels": {"a": "b"}}]}`, []ErrorDetail{
			{"/networks", []string{msgHostNetworks}}}},
		{"bridge network with a name", `{"id": "a", "cmd": "x", "networks": [{"mode": "container/bridge", "name": "n"}]}`, []ErrorDetail{
			{"/networks", []string{msgBridgeNetworks}}}},
		{"host and bridge", `{"id": "a", "cmd": "x", "networks": [{"mode": "host"}, {"mode": "container/bridge"}]}`, []ErrorDetail{
			{"/networks", []string{msgNetworkMix}}}},
		// ports
		{"port definitions", `{"id": "a", "cmd": "x", "portDefinitions": [{"port": 70000, "name": "Web", "protocol": "sctp"}, {"port": 80, "name": "b"}, {"port": 80, "name": "b"}]}`,
			[]ErrorDetail{
				{"/portDefinitions/0/port", []string{"got 70000, expected 65535 or less"}},
				{"/portDefinitions/0/name", []string{"must fully match regular expression '" + portNamePattern + "'"}},
				{"/portDefinitions/0/protocol", []string{`unknown value "sctp": must be one of tcp, udp, udp,tcp`}},
				{"/portDefinitions", []string{msgPortNamesUnique, msgPortsUnique}},
			}},
		{"port mappings", `{"id": "a", "networks": [{"mode": "container/bridge"}], "container": {"docker": {"image": "i"}, "portMappings": [
			{"containerPort": -1, "hostPort": 65536, "servicePort": 70000, "name": "a"}, {"name": "a", "protocol": "udp,tcp"}]}}`,
			[]ErrorDetail{
				{"/container/portMappings/0/containerPort", []string{"got -1, expected 0 or more"}},
				{"/container/portMappings/0/hostPort", []string{"got 65536, expected 65535 or less"}},
				{"/container/portMappings/0/servicePort", []string{"got 70000, expected 65535 or less"}},
				{"/container/portMappings", []string{msgPortNamesUnique}},
			}},
		// container
		{"container type", `{"id": "a", "cmd": "x", "container": {"type": "RKT"}}`, []ErrorDetail{
			{"/container/type", []string{`unknown value "RKT": must be one of DOCKER, MESOS`}}}},
		{"docker without docker", `{"id": "a", "cmd": "x", "container": {"type": "DOCKER"}}`, []ErrorDetail{{"/container/docker", []string{msgNotDefined}}}},
		{"docker image", `{"id": "a", "cmd": "x", "container": {"docker": {"image": ""}}}`, []ErrorDetail{{"/container/docker/image", []string{msgNotEmpty}}}},
		{"docker parameters", `{"id": "a", "container": {"docker": {"image": "i", "privileged": true, "parameters": [
			{"key": "memory", "value": "1g"}, {"key": "ulimit", "value": "nofile=10:5"}, {"key": "pid", "value": "container:x"},
			{"key": "shm-size", "value": "0"}, {"key": "cap-add", "value": "SYS-ADMIN"}, {"key": "env", "value": "NOVALUE"},
			{"key": "volume", "value": "data:/data"}, {"key": "device", "value": "/dev/fuse:x"}, {"key": "workdir", "value": "w"},
			{"key": "read-only", "value": "yes"}, {"key": "label", "value": "=v"}, {"key": "hostname", "value": "a b"},
			{"key": "ulimit", "value": "nproc"},
			{"key": "pid", "value": "host"}, {"key": "ipc", "value": "host"}, {"key": "net", "value": "host"}, {"key": "shm-size", "value": "350m"},
			{"key": "cap-drop", "value": "net_raw"}, {"key": "ulimit", "value": "nofile=1024:2048"}, {"key": "e", "value": "A=1"},
			{"key": "v", "value": "/srv:/data:ro"}, {"key": "device", "value": "/dev/fuse:rw"}, {"key": "w", "value": "/work"},
			{"key": "read-only", "value": "true"}, {"key": "l", "value": "k=v"}, {"key": "h", "value": "box"}
			], "pullConfig": {"secret": "s"}}}}`,
			[]ErrorDetail{
				{"/container/docker/parameters/0/key", []string{`docker parameter "memory" ` + errUnsupportedParameter.Error()}},
				{"/container/docker/parameters/1/value", []string{`docker parameter ulimit: "nofile=10:5": the soft limit is above the hard limit`}},
				{"/container/docker/parameters/2/value", []string{`docker parameter pid: "container:x" is not supported: only host is`}},
				{"/container/docker/parameters/3/value", []string{`docker parameter shm-size: "0" is not a size (a positive number with an optional unit b, k, m or g)`}},
				{"/container/docker/parameters/4/value", []string{`docker parameter cap-add: "SYS-ADMIN" is not a capability`}},
				{"/container/docker/parameters/5/value", []string{`docker parameter env: "NOVALUE" is not NAME=value`}},
				{"/container/docker/parameters/6/value", []string{`docker parameter volume: "data:/data" is not host-path:container-path[:ro|rw] with absolute paths`}},
				{"/container/docker/parameters/7/value", []string{`docker parameter device: "/dev/fuse:x" is not host-path[:container-path][:permissions] with absolute paths and permissions of r, w, m`}},
				{"/container/docker/parameters/8/value", []string{`docker parameter workdir: "w" is not an absolute path`}},
				{"/container/docker/parameters/9/value", []string{`docker parameter read-only: "yes" is not true or false`}},
				{"/container/docker/parameters/10/value", []string{`docker parameter label: "=v" is not key=value`}},
				{"/container/docker/parameters/11/value", []string{`docker parameter hostname: "a b" is not a host name`}},
				{"/container/docker/parameters/12/value", []string{`docker parameter ulimit: "nproc" is not name=soft[:hard] with a name of ` + strings.Join(UlimitNames, ", ")}},
				{"/container/docker/pullConfig", []string{msgPullConfig}},
			}},
		{"privileged and parameters of a MESOS container", `{"id": "a", "container": {"type": "MESOS", "docker": {"image": "i", "privileged": true, "parameters": [{"key": "pid", "value": "host"}]}}}`,
			[]ErrorDetail{
				{"/container/docker/privileged", []string{msgDockerOnly}},
				{"/container/docker/parameters", []string{msgDockerOnly}},
			}},
		{"net=host on the bridge", `{"id": "a", "networks": [{"mode": "container/bridge"}], "container": {"docker": {"image": "i", "parameters": [{"key": "net", "value": "host"}]}, "portMappings": []}}`,
			[]ErrorDetail{{"/container/docker/parameters/0/value", []string{msgNetHost}}}},
		{"volumes", `{"id": "a", "container": {"docker": {"image": "i"}, "volumes": [{"containerPath": "", "hostPath": "", "mode": "RX"}]}}`, []ErrorDetail{
			{"/container/volumes/0/containerPath", []string{msgNotEmpty}},
			{"/container/volumes/0/hostPath", []string{msgNotEmpty}},
			{"/container/volumes/0/mode", []string{`unknown value "RX": must be one of RO, RW`}},
		}},
		{"persistent volumes", `{"id": "a", "cmd": "x", "upgradeStrategy": {"maximumOverCapacity": 0.5}, "residency": {"taskLostBehavior": "NEVER", "relaunchEscalationTimeoutSeconds": -1},
			"container": {"type": "MESOS", "volumes": [
			{"containerPath": "a/b", "mode": "RO", "persistent": {"size": 0}},
			{"containerPath": "c", "mode": "RW", "persistent": {"type": "mount", "size": 1, "maxSize": 2, "constraints": [["path", "LIKE", "x"]]}},
			{"containerPath": "d", "mode": "RW", "hostPath": "/d", "persistent": {"size": 1}}]}}`, []ErrorDetail{
			{"/residency/relaunchEscalationTimeoutSeconds", []string{"got -1, expected 0 or more"}},
			{"/residency/taskLostBehavior", []string{`unknown value "NEVER": must be one of WAIT_FOREVER, RELAUNCH_AFTER_TIMEOUT`}},
			{"/upgradeStrategy/maximumOverCapacity", []string{msgResidentUpgrade}},
			{"/container/volumes/0/containerPath", []string{msgPersistentPath}},
			{"/container/volumes/0/mode", []string{msgPersistentRW}},
			{"/container/volumes/0/persistent/size", []string{"got 0, expected 1 or more"}},
			{"/container/volumes/1/persistent/type", []string{msgPersistentType}},
			{"/container/volumes/1/persistent/maxSize", []string{msgPersistentType}},
			{"/container/volumes/1/persistent/constraints", []string{msgPersistentType}},
			{"/container/volumes/2", []string{msgVolumeKinds}},
		}},
		{"residency without persistent volumes", `{"id": "a", "cmd": "x", "residency": {"taskLostBehavior": "RELAUNCH_AFTER_TIMEOUT"}}`, []ErrorDetail{
			{"/residency", []string{msgResidencyVolumes}},
			{"/residency/taskLostBehavior", []string{msgRelaunchAfterTimeout}}}},
		{"external volume", `{"id": "a", "cmd": "x", "container": {"type": "MESOS", "volumes": [
			{"containerPath": "a", "mode": "RW", "external": {"name": "", "provider": "rexray", "size": 0}}]}}`, []ErrorDetail{
			{"/container/volumes/0/external/name", []string{msgNotEmpty}},
			{"/container/volumes/0/external/provider", []string{`unknown value "rexray": must be one of dvdi`}},
			{"/container/volumes/0/external/options", []string{msgDVDIDriver}},
			{"/container/volumes/0/external/size", []string{"got 0, expected 1 or more"}},
		}},
		// health checks
		{"health check port index", `{"id": "a", "cmd": "x", "healthChecks": [{"portIndex": 1}, {"protocol": "MESOS_TCP", "portIndex": -1}]}`, []ErrorDetail{
			{"/healthChecks/0", []string{msgHealthPortIndex}},
			{"/healthChecks/1", []string{msgHealthPortIndex}},
		}},
		{"health check without a port", `{"id": "a", "cmd": "x", "portDefinitions": [], "healthChecks": [{"protocol": "TCP"}]}`, []ErrorDetail{
			{"/healthChecks/0", []string{msgHealthPortIndex}}}},
		{"health check fields", `{"id": "a", "cmd": "x", "healthChecks": [{"protocol": "UDP", "port": 70000, "gracePeriodSeconds": -1, "intervalSeconds": -1,
			"timeoutSeconds": -1, "maxConsecutiveFailures": -1, "delaySeconds": -1, "ipProtocol": "IPv5"}]}`, []ErrorDetail{
			{"/healthChecks/0/protocol", []string{`unknown value "UDP": must be one of HTTP, HTTPS, TCP, COMMAND, MESOS_HTTP, MESOS_HTTPS, MESOS_TCP`}},
			{"/healthChecks/0/port", []string{"got 70000, expected 65535 or less"}},
			{"/healthChecks/0/gracePeriodSeconds", []string{"got -1, expected 0 or more"}},
			{"/healthChecks/0/intervalSeconds", []string{"got -1, expected 0 or more"}},
			{"/healthChecks/0/timeoutSeconds", []string{"got -1, expected 0 or more"}},
			{"/healthChecks/0/maxConsecutiveFailures", []string{"got -1, expected 0 or more"}},
			{"/healthChecks/0/delaySeconds", []string{"got -1, expected 0 or more"}},
			{"/healthChecks/0/ipProtocol", []string{`unknown value "IPv5": must be one of IPv4, IPv6`}},
		}},
		{"command check without command", `{"id": "a", "cmd": "x", "healthChecks": [{"protocol": "COMMAND"}]}`, []ErrorDetail{
			{"/healthChecks/0/command", []string{msgNotDefined}}}},
		{"two Mesos checks", `{"id": "a", "cmd": "x", "healthChecks": [{"protocol": "MESOS_HTTP"}, {"protocol": "MESOS_TCP"}]}`, []ErrorDetail{
			{"/healthChecks", []string{msgOneMesosCheck}}}},
		// check
		{"check of two kinds", `{"id": "a", "cmd": "x", "check": {"http": {}, "tcp": {}}}`, []ErrorDetail{
			{"/check", []string{msgCheckOneKind + ": got http and tcp"}}}},
		{"check of three kinds", `{"id": "a", "cmd": "x", "check": {"http": {}, "tcp": {}, "exec": {"command": {"shell": "true"}}}}`, []ErrorDetail{
			{"/check", []string{msgCheckOneKind + ": got http and tcp and exec"}}}},
		{"check of no kind", `{"id": "a", "cmd": "x", "check": {"intervalSeconds": 5}}`, []ErrorDetail{
			{"/check", []string{msgCheckOneKind + ": got none"}}}},
		{"check port index out of range", `{"id": "a", "cmd": "x", "check": {"http": {"portIndex": 1}}}`, []ErrorDetail{
			{"/check/http/portIndex", []string{"got 1, expected the index of one of the app's ports (0 to 0)"}}}},
		{"check negative port index", `{"id": "a", "cmd": "x", "portDefinitions": [{}, {}], "check": {"tcp": {"portIndex": -1}}}`, []ErrorDetail{
			{"/check/tcp/portIndex", []string{"got -1, expected the index of one of the app's ports (0 to 1)"}}}},
		{"check port index without ports", `{"id": "a", "cmd": "x", "portDefinitions": [], "check": {"tcp": {"portIndex": 0}}}`, []ErrorDetail{
			{"/check/tcp/portIndex", []string{"got 0, but the app has no ports"}}}},
		{"check without a port", `{"id": "a", "cmd": "x", "portDefinitions": [], "check": {"http": {}}}`, []ErrorDetail{
			{"/check/http", []string{msgCheckPort}}}},
		{"check with port and port index", `{"id": "a", "cmd": "x", "check": {"tcp": {"port": 80, "portIndex": 0}}}`, []ErrorDetail{
			{"/check/tcp", []string{msgCheckPort}}}},
		{"check port", `{"id": "a", "cmd": "x", "check": {"tcp": {"port": 0}}}`, []ErrorDetail{
			{"/check/tcp/port", []string{"got 0, expected 1 or more"}}}},
		{"check http fields", `{"id": "a", "cmd": "x", "check": {"http": {"port": 65536, "path": "health", "scheme": "HTTPS"}}}`, []ErrorDetail{
			{"/check/http/port", []string{"got 65536, expected 65535 or less"}},
			{"/check/http/path", []string{msgCheckPath}},
			{"/check/http/scheme", []string{msgCheckHTTPS}},
		}},
		{"check scheme", `{"id": "a", "cmd": "x", "check": {"http": {"scheme": "FTP"}}}`, []ErrorDetail{
			{"/check/http/scheme", []string{`unknown value "FTP": must be one of HTTP, HTTPS`}}}},
		{"check command of both forms", `{"id": "a", "cmd": "x", "check": {"exec": {"command": {"shell": "true", "argv": ["true"]}}}}`, []ErrorDetail{
			{"/check/exec/command", []string{msgCheckCommand}}}},
		{"check without a command", `{"id": "a", "cmd": "x", "check": {"exec": {"command": {"argv": []}}}}`, []ErrorDetail{
			{"/check/exec/command", []string{msgCheckCommand}}}},
		{"check path", `{"id": "a", "cmd": "x", "check": {"http": {"path": "/a b\n"}}}`, []ErrorDetail{
			{"/check/http/path", []string{msgCheckPath}}}},
		{"check argv without executable", `{"id": "a", "cmd": "x", "check": {"exec": {"command": {"argv": ["", "x"]}}}}`, []ErrorDetail{
			{"/check/exec/command/argv/0", []string{msgNotEmpty}}}},
		{"check timings", `{"id": "a", "cmd": "x", "check": {"exec": {"command": {"shell": "true"}}, "intervalSeconds": 0, "timeoutSeconds": -1, "delaySeconds": -1}}`, []ErrorDetail{
			{"/check/intervalSeconds", []string{"got 0, expected 1 or more"}},
			{"/check/timeoutSeconds", []string{"got -1, expected 0 or more"}},
			{"/check/delaySeconds", []string{"got -1, expected 0 or more"}},
		}},
		// readiness checks
		{"readiness checks", `{"id": "a", "cmd": "x", "portDefinitions": [{"name": "http"}], "readinessChecks": [
			{"name": "", "protocol": "TCP", "path": "", "portName": "web", "intervalSeconds": 5, "timeoutSeconds": 5, "httpStatusCodesForReady": [99, 1000]},
			{"portName": "http", "timeoutSeconds": 0}]}`,
			[]ErrorDetail{
				{"/readinessChecks", []string{"got 2, expected 1 or less"}},
				{"/readinessChecks/0/name", []string{msgNotEmpty}},
				{"/readinessChecks/0/protocol", []string{`unknown value "TCP": must be one of HTTP, HTTPS`}},
				{"/readinessChecks/0/path", []string{msgNotEmpty}},
				{"/readinessChecks/0/portName", []string{"No port definition reference for portName web"}},
				{"/readinessChecks/0/timeoutSeconds", []string{"got 5, expected less than 5"}},
				{"/readinessChecks/0/httpStatusCodesForReady/0", []string{"got 99, expected 100 or more"}},
				{"/readinessChecks/0/httpStatusCodesForReady/1", []string{"got 1000, expected 999 or less"}},
				{"/readinessChecks/1/timeoutSeconds", []string{"got 0, expected more than 0"}},
			}},
		// legacy forms that contradict canonical ones
		{"uris and fetch", `{"id": "a", "cmd": "x", "uris": ["http://a"], "fetch": [{"uri": "http://b"}]}`, []ErrorDetail{{"/uris", []string{msgUrisAndFetch}}}},
		{"ports and port definitions", `{"id": "a", "cmd": "x", "ports": [1], "portDefinitions": [{"port": 2}]}`, []ErrorDetail{{"/ports", []string{msgPortsAndDefs}}}},
		{"both port mappings", `{"id": "a", "container": {"docker": {"image": "i", "portMappings": [{"containerPort": 1}]}, "portMappings": []}}`, []ErrorDetail{
			{"/container/docker/portMappings", []string{msgDockerPortMaps}}}},
		{"docker network and networks", `{"id": "a", "container": {"docker": {"image": "i", "network": "BRIDGE"}}, "networks": [{"mode": "host"}]}`, []ErrorDetail{
			{"/container/docker/network", []string{"must not specify both container.docker.network and networks"}}}},
		{"ipAddress and networks", `{"id": "a", "cmd": "x", "ipAddress": {"networkName": "mesos-bridge"}, "networks": [{"mode": "host"}]}`, []ErrorDetail{
			{"/ipAddress", []string{"must not specify both networks and ipAddress"}}}},
		{"discovery ports on docker", `{"id": "a", "ipAddress": {}, "container": {"docker": {"image": "i", "network": "BRIDGE"}}, "portDefinitions": [],
			"ipAddress": {"discovery": {"ports": [{"number": 80, "name": "web"}]}}}`, []ErrorDetail{
			{"/ipAddress/discovery/ports", []string{"ipAddress.discovery.ports do not apply for container type DOCKER"}}}},
		{"discovery ports and port mappings", `{"id": "a", "cmd": "x", "ipAddress": {"networkName": "mesos-bridge", "discovery": {"ports": [{"number": 80, "name": "web"}]}},
			"container": {"type": "MESOS", "portMappings": [{"containerPort": 81}]}}`, []ErrorDetail{
			{"/ipAddress/discovery/ports", []string{"container.portMappings and ipAddress.discovery.ports must not both be set"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, validated(t, tt.json), 422, "Object is not valid", tt.want)
		})
	}
}

func TestValidateDockerNetworkNone(t *testing.T) {
	// NONE is rejected while decoding; an app read otherwise still fails Validate.
	var app App
	if err := json.Unmarshal([]byte(`{"id": "a", "container": {"docker": {"image": "i", "network": "NONE"}}}`), &app); err != nil {
		t.Fatal(err)
	}
	Normalize(&app, "/")
	wantError(t, Validate(&app), 422, "Object is not valid", []ErrorDetail{
		{"/container/docker/network", []string{"unsupported docker network type NONE"}}})
}

func TestValidateGroup(t *testing.T) {
	tests := []struct {
		name string
		json string
		want []ErrorDetail
	}{
		{"valid tree", `{"id": "/p", "dependencies": ["/elsewhere"], "apps": [{"id": "a", "cmd": "x", "dependencies": ["b", "/p/g"]}, {"id": "b", "cmd": "x"}],
			"groups": [{"id": "g", "dependencies": ["../b"], "apps": [{"id": "c", "cmd": "x"}]}]}`, nil},
		{"app errors with paths", `{"id": "/p", "groups": [{"id": "g", "apps": [{"id": "c", "cmd": "x", "cpus": 0}]}]}`, []ErrorDetail{
			{"/groups/0/apps/0/cpus", []string{"got 0.0, expected 0.001 or more"}}}},
		{"whole-app error path", `{"id": "/p", "apps": [{"id": "c"}]}`, []ErrorDetail{{"/apps/0", []string{msgCmdArgs}}}},
		{"not a child", `{"id": "/p", "apps": [{"id": "/q/a", "cmd": "x"}], "groups": [{"id": "/p/g/h"}]}`, []ErrorDetail{
			{"/apps/0/id", []string{"Identifier is not child of '/p'"}},
			{"/groups/0/id", []string{"Identifier is not child of '/p'"}},
		}},
		{"duplicate ids", `{"id": "/p", "apps": [{"id": "a", "cmd": "x"}, {"id": "a", "cmd": "y"}], "groups": [{"id": "a"}]}`, []ErrorDetail{
			{"/apps/1/id", []string{"/p/a is used by more than one app or group"}},
			{"/groups/0/id", []string{"/p/a is used by more than one app or group"}},
		}},
		{"group id", `{"id": "/P", "dependencies": ["/x_y"]}`, []ErrorDetail{
			{"/id", []string{"must fully match regular expression '" + idSegmentPattern + "'"}},
			{"/dependencies/0", []string{"must fully match regular expression '" + idSegmentPattern + "'"}},
		}},
		{"unknown dependency inside the tree", `{"id": "/p", "apps": [{"id": "a", "cmd": "x", "dependencies": ["nope"]}], "groups": [{"id": "g", "dependencies": ["/p/gone"]}]}`, []ErrorDetail{
			{"/apps/0/dependencies/0", []string{"unknown app or group /p/nope"}},
			{"/groups/0/dependencies/0", []string{"unknown app or group /p/gone"}},
		}},
		{"cycle between apps", `{"id": "/p", "apps": [{"id": "a", "cmd": "x", "dependencies": ["b"]}, {"id": "b", "cmd": "x", "dependencies": ["c"]}, {"id": "c", "cmd": "x", "dependencies": ["a"]}]}`,
			[]ErrorDetail{{"/", []string{msgCyclicDependency + ": /p/a -> /p/b -> /p/c -> /p/a"}}}},
		{"cycle through groups", `{"id": "/p", "apps": [{"id": "a", "cmd": "x", "dependencies": ["g"]}], "groups": [{"id": "g", "dependencies": ["../a"], "apps": [{"id": "b", "cmd": "x"}]}]}`,
			[]ErrorDetail{{"/", []string{msgCyclicDependency + ": /p/a -> /p/g/b -> /p/a"}}}},
		{"app on its own group", `{"id": "/p", "apps": [{"id": "a", "cmd": "x", "dependencies": ["/p"]}]}`,
			[]ErrorDetail{{"/", []string{msgCyclicDependency + ": /p/a -> /p/a"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := DecodeGroup([]byte(tt.json))
			if err != nil {
				t.Fatal(err)
			}
			NormalizeGroup(g, "/")
			e := ValidateGroup(g)
			if tt.want == nil {
				if e != nil {
					t.Fatalf("rejected: %v", e)
				}
				return
			}
			wantError(t, e, 422, "Object is not valid", tt.want)
		})
	}
}

func TestValidateGroupNilMembers(t *testing.T) {
	g := &Group{ID: "/p", Apps: []*App{nil}, Groups: []*Group{nil}}
	wantError(t, ValidateGroup(g), 422, "Object is not valid", []ErrorDetail{
		{"/apps/0", []string{"error.expected.jsobject"}},
		{"/groups/0", []string{"error.expected.jsobject"}},
	})
}
