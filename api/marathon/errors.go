package marathon

import (
	"fmt"
	"net/http"
	"strings"
)

// Error is Marathon's error body: {"message": …, "details": [{"path": …, "errors": […]}]}
// (and, for a locked app, "deployments"). Status is the HTTP status to answer with.
type Error struct {
	Status  int           `json:"-"`
	Message string        `json:"message"`
	Details []ErrorDetail `json:"details,omitempty"`
	// Deployments are the deployments that lock an app (409 only).
	Deployments []DeploymentRef `json:"deployments,omitempty"`
}

// ErrorDetail is what is wrong at one JSON path ("/" is the whole document).
type ErrorDetail struct {
	Path   string   `json:"path"`
	Errors []string `json:"errors"`
}

// DeploymentRef names a deployment.
type DeploymentRef struct {
	ID string `json:"id"`
}

// Messages of Marathon's error bodies.
const (
	MessageInvalidJSON   = "Invalid JSON"
	MessageInvalidObject = "Object is not valid"
)

// Play's codes for JSON of the wrong type, and the one for a missing required field.
const (
	codeString  = "error.expected.jsstring"
	codeNumber  = "error.expected.jsnumber"
	codeInt     = "error.expected.int"
	codeLong    = "error.expected.long"
	codeObject  = "error.expected.jsobject"
	codeArray   = "error.expected.jsarray"
	codeBoolean = "error.expected.jsboolean"
	codeEnum    = "error.unknown.enum.literal"
	codeMissing = "error.path.missing"
)

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", e.Status, e.Message)
	for i, d := range e.Details {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %s", d.Path, strings.Join(d.Errors, ", "))
	}
	return b.String()
}

// NewAppLockedError is the 409 for a change to an app that deployments are changing.
func NewAppLockedError(deploymentIDs ...string) *Error {
	refs := make([]DeploymentRef, len(deploymentIDs))
	for i, id := range deploymentIDs {
		refs[i] = DeploymentRef{ID: id}
	}
	return &Error{
		Status: http.StatusConflict,
		Message: "App is locked by one or more deployments. Override with the option '?force=true'. " +
			"View details at '/v2/deployments/" + strings.Join(deploymentIDs, ",") + "'.",
		Deployments: refs,
	}
}

// NewAppExistsError is the 409 for creating an app whose id is taken.
func NewAppExistsError(id string) *Error {
	return &Error{Status: http.StatusConflict, Message: "An app with id [" + id + "] already exists."}
}

// details collects error details in order, one entry per path.
type details struct {
	list []ErrorDetail
}

func (d *details) add(path, msg string) {
	if path == "" {
		path = "/"
	}
	for i := range d.list {
		if d.list[i].Path == path {
			d.list[i].Errors = append(d.list[i].Errors, msg)
			return
		}
	}
	d.list = append(d.list, ErrorDetail{Path: path, Errors: []string{msg}})
}

// errorWith returns nil when nothing was added, else an Error with the details.
func (d *details) errorWith(status int, message string) *Error {
	if len(d.list) == 0 {
		return nil
	}
	return &Error{Status: status, Message: message, Details: d.list}
}
