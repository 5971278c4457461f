// Package builtin is the package repository Atoll carries in its binary: packages written
// for Atoll (spark, marathon, chronos, kafka, zookeeper, redis, postgresql, nginx, jenkins,
// cassandra) in the Universe layout, packages/<L>/<name>/<revision>/ with package.json,
// config.json, resource.json and marathon.json.mustache. A master serves it as the
// repository named Name, first in the list unless an operator removes it.
package builtin

import (
	"embed"
	"io/fs"
)

// Name is the built-in repository's name in `atoll pkg repo list`.
const Name = "built-in"

// URI is how the repository list shows where the built-in repository comes from.
const URI = "builtin:"

//go:embed packages
var files embed.FS

// FS is the repository: its root holds the packages directory.
func FS() fs.FS { return files }
