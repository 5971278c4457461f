package marathon

import (
	"strconv"
)

// Reasons for rejecting what Atoll does not support (see the package doc).
const (
	msgStoreURLs  = "the artifact store is not supported by Atoll: use fetch"
	msgAppC       = "AppC images are not supported by Atoll: use docker images"
	msgLinuxInfo  = "linuxInfo (seccomp, IPC settings) is not supported by Atoll"
	msgCredential = "registry credentials are not supported by Atoll"
	msgNoNetwork  = "docker network NONE is not supported by Atoll: use networks [{\"mode\": \"container/bridge\"}], a named container network or host networking"
	msgPods       = "pods are not supported by Atoll: use apps"
	msgPullConfig = "pullConfig (registry credentials from a secret) is not supported by Atoll"
	msgExecutor   = "custom executors are not supported by Atoll: use \"\" or \"//cmd\""
	msgGpus       = "GPU resources are not supported by Atoll"
)

// unsupportedApp reports the unsupported features of an app as written, before decoding
// drops the fields Atoll has no Go field for and before normalisation rewrites legacy forms.
func unsupportedApp(u *details, app map[string]any, path string) {
	if urls, ok := app["storeUrls"].([]any); ok && len(urls) > 0 {
		u.add(path+"/storeUrls", msgStoreURLs)
	}
	if container, ok := app["container"].(map[string]any); ok {
		cpath := path + "/container"
		if container["appc"] != nil {
			u.add(cpath+"/appc", msgAppC)
		}
		if container["linuxInfo"] != nil {
			u.add(cpath+"/linuxInfo", msgLinuxInfo)
		}
		if docker, ok := container["docker"].(map[string]any); ok {
			if docker["credential"] != nil {
				u.add(cpath+"/docker/credential", msgCredential)
			}
			if docker["network"] == dockerNetworkNoNetwork {
				u.add(cpath+"/docker/network", msgNoNetwork)
			}
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
