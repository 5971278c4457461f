package master

import (
	"slices"

	"github.com/atoll/atoll/api"
)

// withoutSecretValues is ci without the values of its secret volumes: a task's secrets
// reach its agent in the LAUNCH, and no reader of the masters' state sees them (they show
// as {"type": "VALUE"}). ci itself is left as it is.
func withoutSecretValues(ci *api.ContainerInfo) *api.ContainerInfo {
	if ci == nil {
		return nil
	}
	var out *api.ContainerInfo
	for i, v := range ci.Volumes {
		if v.Source == nil || v.Source.Secret == nil || v.Source.Secret.Value == nil {
			continue
		}
		if out == nil {
			copied := *ci
			copied.Volumes = slices.Clone(ci.Volumes)
			out = &copied
		}
		source, secret := *v.Source, *v.Source.Secret
		secret.Value = nil
		source.Secret = &secret
		out.Volumes[i].Source = &source
	}
	if out == nil {
		return ci
	}
	return out
}
