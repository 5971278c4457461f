package marathon

import (
	"strconv"
)

// Reasons for rejecting what Atoll does not support (see the package doc).
const (
	msgExternalVolumes   = "external volumes are not supported by Atoll: use hostPath volumes"
	msgPersistentVolumes = "persistent local volumes are not supported by Atoll: use hostPath volumes"
	msgResidency         = "resident apps (local persistent volumes) are not supported by Atoll"
	msgStoreURLs         = "the artifact store is not supported by Atoll: use fetch"
	msgAppC              = "AppC images are not supported by Atoll: use docker images"
	msgLinuxInfo         = "linuxInfo (seccomp, IPC settings) is not supported by Atoll"
	msgCredential        = "registry credentials are not supported by Atoll"
	msgContainerNetwork  = "named container networks are not supported by Atoll: use networks [{\"mode\": \"container/bridge\"}] or host networking"
	msgPods              = "pods are not supported by Atoll: use apps"
	msgSecrets           = "secrets are not supported by Atoll"
	msgSecretVolumes     = "secret volumes are not supported by Atoll: it has no secret store"
	msgExecutor          = "custom executors are not supported by Atoll: use \"\" or \"//cmd\""
	msgGpus              = "GPU resources are not supported by Atoll"
	msgPrivileged        = "privileged containers are not supported by Atoll"
	msgDockerParameters  = "docker parameters are not supported by Atoll: it runs containers with runc, not the Docker CLI"
)

// unsupportedApp reports the unsupported features of an app as written, before decoding
// drops the fields Atoll has no Go field for and before normalisation rewrites legacy forms.
func unsupportedApp(u *details, app map[string]any, path string) {
	if app["residency"] != nil {
		u.add(path+"/residency", msgResidency)
	}
	if urls, ok := app["storeUrls"].([]any); ok && len(urls) > 0 {
		u.add(path+"/storeUrls", msgStoreURLs)
	}
	dockerNetwork := ""
	if container, ok := app["container"].(map[string]any); ok {
		cpath := path + "/container"
		if container["appc"] != nil {
			u.add(cpath+"/appc", msgAppC)
		}
		if container["linuxInfo"] != nil {
			u.add(cpath+"/linuxInfo", msgLinuxInfo)
		}
		volumes, _ := container["volumes"].([]any)
		for i, v := range volumes {
			volume, ok := v.(map[string]any)
			if !ok {
				continue
			}
			vpath := cpath + "/volumes/" + strconv.Itoa(i)
			if volume["external"] != nil {
				u.add(vpath+"/external", msgExternalVolumes)
			}
			if volume["persistent"] != nil {
				u.add(vpath+"/persistent", msgPersistentVolumes)
			}
		}
		if docker, ok := container["docker"].(map[string]any); ok {
			if docker["credential"] != nil {
				u.add(cpath+"/docker/credential", msgCredential)
			}
			dockerNetwork, _ = docker["network"].(string)
			if dockerNetwork == dockerNetworkUser || dockerNetwork == dockerNetworkNoNetwork {
				u.add(cpath+"/docker/network", msgContainerNetwork)
			}
		}
	}
	// ipAddress asks for a named container network unless docker.network or the Mesos
	// bridge's name says otherwise (the rules of Normalize's translation).
	if ip, ok := app["ipAddress"].(map[string]any); ok && dockerNetwork == "" {
		if name, _ := ip["networkName"].(string); name != mesosBridgeName {
			u.add(path+"/ipAddress", msgContainerNetwork)
		}
	}
}

// unsupportedGroup reports the unsupported features of a group and everything in it.
func unsupportedGroup(u *details, group map[string]any, path string) {
	if pods, ok := group["pods"].([]any); ok && len(pods) > 0 {
		u.add(path+"/pods", msgPods)
	}
	apps, _ := group["apps"].([]any)
	for i, a := range apps {
		if app, ok := a.(map[string]any); ok {
			unsupportedApp(u, app, path+"/apps/"+strconv.Itoa(i))
		}
	}
	groups, _ := group["groups"].([]any)
	for i, g := range groups {
		if sub, ok := g.(map[string]any); ok {
			unsupportedGroup(u, sub, path+"/groups/"+strconv.Itoa(i))
		}
	}
}
