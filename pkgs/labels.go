package pkgs

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"

	"github.com/atoll/atoll/api/universe"
)

// Installed is what the package labels of an installed app say.
type Installed struct {
	Metadata universe.PackageMetadata
	// Options are the options the user installed it with (not merged with the defaults).
	Options json.RawMessage
	// Source is the URI of the repository it came from.
	Source string
	// Package is the whole package definition; nil when the app has no definition label
	// (apps installed by older Cosmos versions).
	Package *universe.Package
}

// maxDefinitionBytes bounds a decompressed package definition: a label must not make the
// master allocate without bound.
const maxDefinitionBytes = 16 << 20

// ReadLabels reads the package labels of an installed app (see Render). It returns nil, nil
// for an app that was not installed from a package (no universe.LabelName label) and an
// error naming the label when a label is malformed.
func ReadLabels(labels map[string]string) (*Installed, error) {
	if labels[universe.LabelName] == "" {
		return nil, nil
	}
	in := &Installed{Source: labels[universe.LabelSource]}
	metadata, err := base64Label(labels, universe.LabelMetadata)
	if err != nil {
		return nil, err
	}
	if err := universe.Decode(metadata, &in.Metadata); err != nil {
		return nil, fmt.Errorf("label %s: %w", universe.LabelMetadata, err)
	}
	if _, ok := labels[universe.LabelOptions]; ok {
		options, err := base64Label(labels, universe.LabelOptions)
		if err != nil {
			return nil, err
		}
		if _, err := parseOptions(options); err != nil {
			return nil, fmt.Errorf("label %s: %w", universe.LabelOptions, err)
		}
		in.Options = options
	}
	if _, ok := labels[universe.LabelDefinition]; ok {
		if in.Package, err = readDefinition(labels); err != nil {
			return nil, err
		}
	}
	return in, nil
}

func base64Label(labels map[string]string, name string) ([]byte, error) {
	data, err := base64.StdEncoding.DecodeString(labels[name])
	if err != nil {
		return nil, fmt.Errorf("label %s: invalid base64: %w", name, err)
	}
	return data, nil
}

// readDefinition unpacks the DCOS_PACKAGE_DEFINITION label.
func readDefinition(labels map[string]string) (*universe.Package, error) {
	fail := func(err error) error {
		return fmt.Errorf("label %s: %w", universe.LabelDefinition, err)
	}
	data, err := base64Label(labels, universe.LabelDefinition)
	if err != nil {
		return nil, err
	}
	var env universe.StorageEnvelope
	if err := universe.Decode(data, &env); err != nil {
		return nil, fail(err)
	}
	if ct := env.Metadata["Content-Type"]; ct != universe.MediaTypePackageV4 {
		return nil, fail(fmt.Errorf("unsupported Content-Type %q", ct))
	}
	payload := env.Data
	switch enc := env.Metadata["Content-Encoding"]; enc {
	case "":
	case "gzip":
		r, err := gzip.NewReader(bytes.NewReader(env.Data))
		if err != nil {
			return nil, fail(err)
		}
		payload, err = io.ReadAll(io.LimitReader(r, maxDefinitionBytes+1))
		if err != nil {
			return nil, fail(err)
		}
		if len(payload) > maxDefinitionBytes {
			return nil, fail(fmt.Errorf("the definition is larger than %d bytes", maxDefinitionBytes))
		}
	default:
		return nil, fail(fmt.Errorf("unsupported Content-Encoding %q", enc))
	}
	var p universe.Package
	if err := universe.Decode(payload, &p); err != nil {
		return nil, fail(err)
	}
	return &p, nil
}
