// Package yamlnode has the small helpers that the decoders of sluice's
// YAML files (pipelines, and the test files of sluice test) share for
// reading yaml.v3 nodes with their positions: following aliases, telling
// null, naming a node's value in a message, and making a decoded value
// plain.
package yamlnode

import (
	"fmt"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Resolve returns the node an alias stands for, or n itself.
func Resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// IsNull reports whether n is a null scalar: ~, null or nothing.
func IsNull(n *yaml.Node) bool {
	n = Resolve(n)
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// Describe names a node's value for a message: a mapping, a list, null,
// or the quoted scalar.
func Describe(n *yaml.Node) string {
	n = Resolve(n)
	switch {
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case IsNull(n):
		return "null"
	}
	return strconv.Quote(n.Value)
}

// At prefixes msg with where, if any: "where: msg".
func At(where, msg string) string {
	if where == "" {
		return msg
	}
	return where + ": " + msg
}

// Plain turns the mappings that yaml.v3 decodes as map[any]any, when a
// key is not a string, into map[string]any with the keys as text, in a
// value decoded into an any: what JSON and the stages' parameters take.
func Plain(v any) any {
	switch x := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = Plain(e)
		}
		return m
	case map[string]any:
		for k, e := range x {
			x[k] = Plain(e)
		}
	case []any:
		for i, e := range x {
			x[i] = Plain(e)
		}
	}
	return v
}
