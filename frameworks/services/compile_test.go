package services

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/frameworks/services/placement"
)

// compiled decodes, normalises and compiles an app definition.
func compiled(t *testing.T, def string) *appSpec {
	t.Helper()
	app, err := marathon.DecodeApp([]byte(def))
	if err != nil {
		t.Fatal(err)
	}
	marathon.Normalize(app, "/")
	if verr := marathon.Validate(app); verr != nil {
		t.Fatal(verr)
	}
	app.Version = "2026-01-02T03:04:05.000Z"
	spec, err := compile(app)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func envOf(task api.TaskInfo) map[string]string {
	out := map[string]string{}
	for _, v := range task.Command.Environment.Variables {
		out[v.Name] = v.Value
	}
	return out
}

func TestTaskInfoHostNetworking(t *testing.T) {
	spec := compiled(t, `{"id": "/shop/web", "cmd": "serve", "cpus": 0.5, "mem": 64, "env": {"MODE": "prod"},
		"labels": {"HAPROXY_GROUP": "external"}, "taskKillGracePeriodSeconds": 7,
		"portDefinitions": [{"port": 10005, "name": "http"}, {"port": 10006}],
		"healthChecks": [{"protocol": "MESOS_HTTP", "path": "/health", "portIndex": 1, "maxConsecutiveFailures": 0}],
		"fetch": [{"uri": "http://example/x.tgz"}]}`)
	if spec.req.CPUs != 0.5 || spec.req.MemMB != 64 || spec.req.RequirePorts || len(spec.req.Ports) != 2 {
		t.Errorf("requirements %+v", spec.req)
	}
	task := spec.taskInfo("shop_web.1", "agent-1", &placement.Claim{HostPorts: []uint32{31001, 31002}})
	if task.Name != "web.shop" || task.TaskID.Value != "shop_web.1" || task.AgentID.Value != "agent-1" {
		t.Errorf("task %s %s on %s", task.Name, task.TaskID.Value, task.AgentID.Value)
	}
	want := map[string]string{
		"MODE": "prod", "PORT0": "31001", "PORT1": "31002", "PORT_HTTP": "31001", "PORT": "31001", "PORTS": "31001,31002",
		"MARATHON_APP_ID": "/shop/web", "MARATHON_APP_VERSION": "2026-01-02T03:04:05.000Z", "MESOS_TASK_ID": "shop_web.1",
	}
	if got := envOf(task); !reflect.DeepEqual(got, want) {
		t.Errorf("environment %v, want %v", got, want)
	}
	if *task.Command.Value != "serve" || len(task.Command.URIs) != 1 || !*task.Command.URIs[0].Extract {
		t.Errorf("command %+v", task.Command)
	}
	hc := task.HealthCheck
	if hc == nil || hc.Type != "HTTP" || hc.HTTP.Port != 31002 || hc.HTTP.Path != "/health" || *hc.ConsecutiveFailures != math.MaxUint32 {
		t.Errorf("health check %+v (http %+v)", hc, hc.HTTP)
	}
	if task.KillPolicy == nil || task.KillPolicy.GracePeriod.Nanoseconds != 7e9 {
		t.Errorf("kill policy %+v", task.KillPolicy)
	}
	labels := map[string]string{}
	for _, l := range task.Labels.Labels {
		labels[l.Key] = l.Value
	}
	if labels[api.LabelAppID] != "/shop/web" || labels["HAPROXY_GROUP"] != "external" || labels[api.LabelAppVersion] != spec.configVersion {
		t.Errorf("labels %v", labels)
	}
	if !reflect.DeepEqual(spec.servicePorts, []uint32{10005, 10006}) {
		t.Errorf("service ports %v", spec.servicePorts)
	}
	// The template is not changed by a launch.
	if spec.template.Command.Environment != nil && len(spec.template.Command.Environment.Variables) != 1 {
		t.Errorf("the template's environment grew: %v", spec.template.Command.Environment.Variables)
	}
}

func TestTaskInfoBridge(t *testing.T) {
	spec := compiled(t, `{"id": "/db", "cmd": "run", "networks": [{"mode": "container/bridge"}],
		"container": {"type": "MESOS", "docker": {"image": "redis"}, "portMappings": [{"containerPort": 6379, "hostPort": 0, "name": "redis"}, {"containerPort": 0, "hostPort": 0}]},
		"healthChecks": [{"protocol": "MESOS_TCP", "portIndex": 0}]}`)
	if !spec.req.RequirePorts || len(spec.req.Ports) != 2 {
		t.Errorf("requirements %+v", spec.req)
	}
	task := spec.taskInfo("db.1", "agent-1", &placement.Claim{HostPorts: []uint32{31005, 31006}})
	c := task.Container
	if c.Type != "MESOS" || c.Mesos == nil || c.Mesos.Image.Docker.Name != "redis" {
		t.Errorf("container %+v", c)
	}
	wantMappings := []api.PortMapping{{HostPort: 31005, ContainerPort: 6379, Protocol: "tcp"}, {HostPort: 31006, ContainerPort: 31006, Protocol: "tcp"}}
	if len(c.NetworkInfos) != 1 || c.NetworkInfos[0].Name != bridgeNetwork || !reflect.DeepEqual(c.NetworkInfos[0].PortMappings, wantMappings) {
		t.Errorf("network infos %+v, want mappings %+v", c.NetworkInfos, wantMappings)
	}
	// A bridge task's check probes the container's port at its address.
	if hc := task.HealthCheck; hc.Type != "TCP" || hc.TCP.Port != 6379 {
		t.Errorf("health check %+v", hc)
	}
	if env := envOf(task); env["PORT_REDIS"] != "31005" || env["PORT0"] != "31005" {
		t.Errorf("environment %v", env)
	}
	if spec.template.Container.NetworkInfos[0].PortMappings[0].HostPort != 0 {
		t.Error("a launch changed the template's port mappings")
	}
}

// TestTaskInfoCheck: the app's check becomes the task's CheckInfo, its port the task's
// host port (on the bridge the container port), its command a shell command or an
// argument vector.
func TestTaskInfoCheck(t *testing.T) {
	seconds := func(v float64) *float64 { return &v }
	no := false
	shell, exe := "test -e ready", "test"
	tests := []struct {
		name string
		app  string
		want *api.CheckInfo
	}{
		{name: "http on a port index", app: `{"id": "/a", "cmd": "x", "portDefinitions": [{}, {}],
			"check": {"http": {"portIndex": 1, "path": "/v1/health"}, "intervalSeconds": 30, "timeoutSeconds": 20, "delaySeconds": 15}}`,
			want: &api.CheckInfo{Type: api.CheckTypeHTTP, HTTP: &api.CheckInfoHTTP{Port: 31002, Path: "/v1/health"},
				DelaySeconds: seconds(15), IntervalSeconds: seconds(30), TimeoutSeconds: seconds(20)}},
		{name: "tcp on the default port", app: `{"id": "/a", "cmd": "x", "check": {"tcp": {}}}`,
			want: &api.CheckInfo{Type: api.CheckTypeTCP, TCP: &api.CheckInfoTCP{Port: 31001},
				DelaySeconds: seconds(15), IntervalSeconds: seconds(60), TimeoutSeconds: seconds(20)}},
		{name: "tcp on a fixed port", app: `{"id": "/a", "cmd": "x", "check": {"tcp": {"port": 8080}, "delaySeconds": 0}}`,
			want: &api.CheckInfo{Type: api.CheckTypeTCP, TCP: &api.CheckInfoTCP{Port: 8080},
				DelaySeconds: seconds(0), IntervalSeconds: seconds(60), TimeoutSeconds: seconds(20)}},
		{name: "bridge", app: `{"id": "/a", "cmd": "x", "networks": [{"mode": "container/bridge"}],
			"container": {"type": "MESOS", "portMappings": [{"containerPort": 6379}]}, "check": {"tcp": {"portIndex": 0}}}`,
			want: &api.CheckInfo{Type: api.CheckTypeTCP, TCP: &api.CheckInfoTCP{Port: 6379},
				DelaySeconds: seconds(15), IntervalSeconds: seconds(60), TimeoutSeconds: seconds(20)}},
		{name: "shell command", app: `{"id": "/a", "cmd": "x", "check": {"exec": {"command": {"shell": "test -e ready"}}}}`,
			want: &api.CheckInfo{Type: api.CheckTypeCommand, Command: &api.CheckInfoCommand{Command: api.CommandInfo{Value: &shell}},
				DelaySeconds: seconds(15), IntervalSeconds: seconds(60), TimeoutSeconds: seconds(20)}},
		{name: "argv command", app: `{"id": "/a", "cmd": "x", "check": {"exec": {"command": {"argv": ["test", "-e", "ready"]}}}}`,
			want: &api.CheckInfo{Type: api.CheckTypeCommand, Command: &api.CheckInfoCommand{Command: api.CommandInfo{Shell: &no, Value: &exe, Arguments: []string{"test", "-e", "ready"}}},
				DelaySeconds: seconds(15), IntervalSeconds: seconds(60), TimeoutSeconds: seconds(20)}},
		{name: "none", app: `{"id": "/a", "cmd": "x"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := compiled(t, tt.app).taskInfo("a.1", "agent-1", &placement.Claim{HostPorts: []uint32{31001, 31002}})
			if !reflect.DeepEqual(task.Check, tt.want) {
				t.Fatalf("check %+v, want %+v", task.Check, tt.want)
			}
		})
	}
}

// TestCheckResult: a task's check status shows as Marathon's checkResult.
func TestCheckResult(t *testing.T) {
	code, exit, ok := uint32(503), int32(0), false
	tests := []struct {
		status *api.CheckStatusInfo
		want   string
	}{
		{nil, "null"},
		{&api.CheckStatusInfo{Type: api.CheckTypeHTTP, HTTP: &api.CheckStatusHTTP{}}, `{}`},
		{&api.CheckStatusInfo{Type: api.CheckTypeHTTP, HTTP: &api.CheckStatusHTTP{StatusCode: &code}}, `{"http":{"statusCode":503}}`},
		{&api.CheckStatusInfo{Type: api.CheckTypeTCP, TCP: &api.CheckStatusTCP{Succeeded: &ok}}, `{"tcp":{"succeeded":false}}`},
		{&api.CheckStatusInfo{Type: api.CheckTypeCommand, Command: &api.CheckStatusCommand{ExitCode: &exit}}, `{"exec":{"exitCode":0}}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(checkResult(tt.status))
		if err != nil || string(b) != tt.want {
			t.Errorf("checkResult(%+v) = %s, %v; want %s", tt.status, b, err, tt.want)
		}
	}
}

func TestTaskName(t *testing.T) {
	for id, want := range map[string]string{"/web": "web", "/grp/web": "web.grp", "/a/b/c": "c.b.a"} {
		if got := taskName(id); got != want {
			t.Errorf("taskName(%s) = %s, want %s", id, got, want)
		}
	}
}

func TestLaunchDelay(t *testing.T) {
	spec := compiled(t, `{"id": "/x", "cmd": "x", "backoffSeconds": 2, "backoffFactor": 3, "maxLaunchDelaySeconds": 20}`)
	for failures, want := range map[int]float64{0: 0, 1: 2, 2: 6, 3: 18, 4: 20, 10: 20} {
		if got := spec.launchDelay(failures).Seconds(); got != want {
			t.Errorf("launchDelay(%d) = %vs, want %vs", failures, got, want)
		}
	}
}

func TestCapacities(t *testing.T) {
	for _, tt := range []struct {
		minHealthy, maxOver float64
		n, wantMin, wantMax int
	}{
		{1, 1, 4, 4, 8}, {0.5, 0, 4, 2, 4}, {0.5, 0.25, 5, 3, 6}, {0, 0, 3, 0, 3},
	} {
		spec := &appSpec{minHealthy: tt.minHealthy, maxOver: tt.maxOver}
		if gotMin, gotMax := spec.capacities(tt.n); gotMin != tt.wantMin || gotMax != tt.wantMax {
			t.Errorf("capacities(%d) with {%v, %v} = %d, %d; want %d, %d", tt.n, tt.minHealthy, tt.maxOver, gotMin, gotMax, tt.wantMin, tt.wantMax)
		}
	}
}

// A DOCKER container's volumes, privileged flag and parameters reach the TaskInfo as the
// agents' runc containerizer reads them.
func TestTaskInfoDockerContainer(t *testing.T) {
	spec := compiled(t, `{"id": "/agent", "container": {"type": "DOCKER",
		"docker": {"image": "probe:1", "privileged": true, "parameters": [{"key": "pid", "value": "host"}, {"key": "label", "value": "a=b"}]},
		"volumes": [{"containerPath": "/host/proc", "hostPath": "/proc", "mode": "RO"}, {"containerPath": "data", "hostPath": "data", "mode": "RW"}]}}`)
	task := spec.taskInfo("agent.1", "agent-1", &placement.Claim{HostPorts: []uint32{31001}})
	want := &api.ContainerInfo{
		Type: "DOCKER",
		Volumes: []api.Volume{
			{ContainerPath: "/host/proc", HostPath: "/proc", Mode: "RO"},
			{ContainerPath: "data", HostPath: "data", Mode: "RW"},
		},
		Docker: &api.DockerInfo{Image: "probe:1", Privileged: true, Parameters: []api.Parameter{{Key: "pid", Value: "host"}, {Key: "label", Value: "a=b"}}},
	}
	if !reflect.DeepEqual(task.Container, want) {
		got, _ := json.Marshal(task.Container)
		t.Errorf("container %s", got)
	}
}

// A MESOS container's persistent, external and secret volumes and its named network reach
// the TaskInfo: persistent volumes as disk resources with their persistence ids carved
// from the claimed disk, external ones as Docker volumes of their driver, secrets by value.
func TestTaskInfoVolumesAndNetworks(t *testing.T) {
	spec := compiled(t, `{"id": "/db", "cmd": "x", "disk": 10, "networks": [{"mode": "container", "name": "dcos"}], "secrets": {"cert": {"source": "/tls/cert"}},
		"env": {"CERT": {"secret": "cert"}}, "container": {"type": "MESOS", "portMappings": [], "volumes": [
		{"containerPath": "data", "mode": "RW", "persistent": {"size": 100}},
		{"containerPath": "px", "mode": "RW", "external": {"name": "vol-1", "provider": "dvdi", "size": 5, "options": {"dvdi/driver": "pxd", "dvdi/repl": "2"}}},
		{"containerPath": "cert.pem", "secret": "cert"}]}}`)
	if spec.req.DiskMB != 110 || !reflect.DeepEqual(spec.req.Networks, []string{"dcos"}) || !reflect.DeepEqual(spec.req.VolumeDrivers, []string{"pxd"}) {
		t.Errorf("requirements %+v", spec.req)
	}
	disk := func(mb float64) api.Resource {
		return api.Resource{Name: "disk", Type: api.Scalar, Scalar: &api.ValueScalar{Value: mb}, Role: "*"}
	}
	task := spec.taskInfo("db.1", "agent-1", &placement.Claim{Resources: []api.Resource{disk(110)}})
	task.Resources = withPersistentVolumes(task.Resources, spec.persistent, []string{"db#data#1"})
	task = withSecretValues(task, map[string][]byte{"cert": []byte("PEM")})
	pv := disk(100)
	pv.Disk = &api.DiskInfo{Persistence: &api.DiskPersistence{ID: "db#data#1"}, Volume: &api.Volume{ContainerPath: "data", Mode: "RW"}}
	if want := []api.Resource{disk(10), pv}; !reflect.DeepEqual(task.Resources, want) {
		got, _ := json.Marshal(task.Resources)
		t.Errorf("resources %s", got)
	}
	value := &api.Secret{Type: api.SecretValueType, Value: &api.SecretValue{Data: []byte("PEM")}}
	want := &api.ContainerInfo{
		Type: "MESOS",
		Volumes: []api.Volume{
			{ContainerPath: "px", Mode: "RW", Source: &api.VolumeSource{Type: api.VolumeSourceDockerVolume, DockerVolume: &api.DockerVolumeSource{
				Driver: "pxd", Name: "vol-1", DriverOptions: &api.Parameters{Parameter: []api.Parameter{{Key: "dvdi/repl", Value: "2"}, {Key: "size", Value: "5"}}}}}},
			{ContainerPath: "cert.pem", Mode: "RO", Source: &api.VolumeSource{Type: api.VolumeSourceSecret, Secret: value}},
		},
		NetworkInfos: []api.NetworkInfo{{Name: "dcos"}},
	}
	if !reflect.DeepEqual(task.Container, want) {
		got, _ := json.Marshal(task.Container)
		t.Errorf("container %s", got)
	}
	if v := task.Command.Environment.Variables[0]; v.Name != "CERT" || v.Type != api.EnvSecret || !reflect.DeepEqual(v.Secret, value) {
		t.Errorf("variable %+v", v)
	}
	if spec.template.Command.Environment.Variables[0].Secret.Type != api.SecretReferenceType {
		t.Errorf("the template got the value: %+v", spec.template.Command.Environment.Variables[0])
	}
}
