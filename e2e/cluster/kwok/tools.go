//go:build tools

// The command the build script compiles from this module.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
