//go:build tools

// The command the build script compiles from this module: the Feast operator's
// manager (its Dockerfile builds ./cmd/ the same way).
package tools

import _ "github.com/feast-dev/feast/infra/feast-operator/cmd"
