package services

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/node/master/state"
)

// The secret store: secrets by name in the framework's part of the replicated key-value
// table, set and removed through /v1/secrets (which lists names, never values). An app's
// secrets name secrets of the store; a deployment whose apps name a missing one is
// refused, and its tasks get the values when they launch: variables for env values
// {"secret": …}, files for secret volumes.

// secretsPath is the secret store's API.
const secretsPath = "/v1/secrets"

func secretKey(name string) string { return "secret/" + name }

// secretRecord is a stored secret.
type secretRecord struct {
	Value []byte `json:"value"`
}

// secretName is a secret's name as the store keeps it: path segments of letters, digits
// and "._-", without the leading slash DC/OS paths have.
func secretName(name string) (string, error) {
	n := strings.TrimPrefix(name, "/")
	for seg := range strings.SplitSeq(n, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.Trim(seg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
			return "", fmt.Errorf("%q is not a secret name: path segments of letters, digits and ._- only", name)
		}
	}
	return n, nil
}

// secretRoutes serves the secret store's API where the framework schedules.
func (s *Service) secretRoutes(handle func(string, func(http.ResponseWriter, *http.Request) error)) {
	handle("GET "+secretsPath, s.listSecrets)
	handle("PUT "+secretsPath+"/{name...}", s.putSecret)
	handle("DELETE "+secretsPath+"/{name...}", s.deleteSecret)
}

// listSecrets answers {"secrets": [names]}.
func (s *Service) listSecrets(w http.ResponseWriter, r *http.Request) error {
	entries, err := s.host.KVList(r.Context(), secretKey(""))
	if err != nil {
		return err
	}
	names := []string{}
	for _, e := range entries {
		names = append(names, strings.TrimPrefix(e.Key, secretKey("")))
	}
	writeJSON(w, http.StatusOK, map[string][]string{"secrets": names})
	return nil
}

// putSecret stores {"value": "…"} as the secret: 201 when it is new, 204 when it replaced
// one.
func (s *Service) putSecret(w http.ResponseWriter, r *http.Request) error {
	name, err := secretName(r.PathValue("name"))
	if err != nil {
		return httpError(http.StatusBadRequest, "%v", err)
	}
	data, err := readBody(r)
	if err != nil {
		return err
	}
	var body struct {
		Value *string `json:"value"`
	}
	if err := json.Unmarshal(data, &body); err != nil || body.Value == nil {
		return httpError(http.StatusBadRequest, `the body must be {"value": "…"}`)
	}
	value, err := json.Marshal(secretRecord{Value: []byte(*body.Value)})
	if err != nil {
		return err
	}
	_, existed, err := s.host.KV(r.Context(), secretKey(name))
	if err != nil {
		return err
	}
	if err := s.persist(r.Context(), &state.WriteKVRequest{Namespace: s.namespace, Puts: []state.KVPut{{Key: secretKey(name), Value: value}}}); err != nil {
		return err
	}
	if existed {
		w.WriteHeader(http.StatusNoContent)
	} else {
		w.WriteHeader(http.StatusCreated)
	}
	return nil
}

// deleteSecret removes a secret: 204, or 404 when there is none.
func (s *Service) deleteSecret(w http.ResponseWriter, r *http.Request) error {
	name, err := secretName(r.PathValue("name"))
	if err != nil {
		return httpError(http.StatusBadRequest, "%v", err)
	}
	if _, ok, err := s.host.KV(r.Context(), secretKey(name)); err != nil {
		return err
	} else if !ok {
		return httpError(http.StatusNotFound, "secret %s does not exist", name)
	}
	if err := s.persist(r.Context(), &state.WriteKVRequest{Namespace: s.namespace, Deletes: []string{secretKey(name)}}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// secretValues reads the values of an app's secrets, by their names in the app; a secret
// missing from the store is an error naming it.
func (s *Service) secretValues(ctx context.Context, secrets map[string]marathon.SecretDef) (map[string][]byte, error) {
	values := map[string][]byte{}
	for name, def := range secrets {
		key, err := secretName(def.Source)
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", name, err)
		}
		entry, ok, err := s.host.KV(ctx, secretKey(key))
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", name, err)
		}
		if !ok {
			return nil, fmt.Errorf("secret %s: %s is not in the secret store (PUT %s/%s sets it)", name, def.Source, secretsPath, key)
		}
		var rec secretRecord
		if err := json.Unmarshal(entry.Value, &rec); err != nil {
			return nil, fmt.Errorf("secret %s: %w", name, err)
		}
		values[name] = rec.Value
	}
	return values, nil
}

// checkSecrets refuses a deployment of apps that name secrets the store does not have.
func (s *Service) checkSecrets(ctx context.Context, targets map[string]*marathon.App) error {
	var details []marathon.ErrorDetail
	for _, id := range slices.Sorted(maps.Keys(targets)) {
		app := targets[id]
		if app == nil || len(app.Secrets) == 0 {
			continue
		}
		if _, err := s.secretValues(ctx, app.Secrets); err != nil {
			details = append(details, marathon.ErrorDetail{Path: "/secrets", Errors: []string{id + ": " + err.Error()}})
		}
	}
	if len(details) > 0 {
		return &marathon.Error{Status: http.StatusUnprocessableEntity, Message: marathon.MessageInvalidObject, Details: details}
	}
	return nil
}

// withSecretValues gives a task the values of its app's secrets: its SECRET variables and
// secret volumes name them (by reference to the app's secret names, as compile made them)
// and get VALUE secrets instead.
func withSecretValues(task api.TaskInfo, values map[string][]byte) api.TaskInfo {
	resolve := func(sec *api.Secret) *api.Secret {
		if sec == nil || sec.Reference == nil {
			return sec
		}
		return &api.Secret{Type: api.SecretValueType, Value: &api.SecretValue{Data: values[sec.Reference.Name]}}
	}
	if task.Command != nil && task.Command.Environment != nil {
		cmd := *task.Command
		env := &api.Environment{Variables: make([]api.EnvironmentVariable, len(cmd.Environment.Variables))}
		for i, v := range cmd.Environment.Variables {
			if v.Type == api.EnvSecret {
				v.Secret = resolve(v.Secret)
			}
			env.Variables[i] = v
		}
		cmd.Environment = env
		task.Command = &cmd
	}
	if task.Container != nil {
		c := *task.Container
		c.Volumes = make([]api.Volume, len(task.Container.Volumes))
		for i, v := range task.Container.Volumes {
			if v.Source != nil && v.Source.Type == api.VolumeSourceSecret {
				src := *v.Source
				src.Secret = resolve(src.Secret)
				v.Source = &src
			}
			c.Volumes[i] = v
		}
		task.Container = &c
	}
	return task
}
