//go:build !core

package main

import (
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/builtin"
)

// newRegistry returns a registry with every built-in stage type. Built
// with -tags core, the program has the core family alone (registry_core.go)
// and links none of the other families' dependencies (pgx, SQLite, gojq).
func newRegistry() *stages.Registry { return builtin.NewRegistry() }
