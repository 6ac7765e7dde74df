package examples_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/internal/yamlnode"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/builtin"
)

// exampleTypes registers the types that the examples define themselves,
// with the parameters they declare: score (examples/embed), redact and
// logfmt (examples/plugin, a Go plugin the test does not build).
func exampleTypes(t *testing.T, reg *stages.Registry) {
	t.Helper()
	newTransform := func(stages.Params, stages.Info) (stages.Transform, error) { return nil, nil }
	newSink := func(stages.Params, stages.Info) (stages.Sink, error) { return nil, nil }
	for _, spec := range []stages.Spec{
		{Name: "score", NewTransform: newTransform, Params: []stages.Param{
			{Name: "large_amount", Type: stages.TypeFloat},
			{Name: "risky_countries", Type: stages.TypeStringList},
		}},
		{Name: "redact", NewTransform: newTransform, Params: []stages.Param{
			{Name: "fields", Type: stages.TypeStringList, Required: true},
			{Name: "mode", Type: stages.TypeString, Enum: []string{"hash", "mask"}},
		}},
		{Name: "logfmt", NewSink: newSink, Params: []stages.Param{
			{Name: "keys", Type: stages.TypeStringList, Required: true},
		}},
	} {
		if err := reg.Register(spec); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSchemaExamples validates every example pipeline against the JSON
// Schema of `sluice schema`.
func TestSchemaExamples(t *testing.T) {
	reg := builtin.NewRegistry()
	exampleTypes(t, reg)
	data, err := pipeline.JSONSchema(reg)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("pipeline.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("pipeline.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	all, err := filepath.Glob("*/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The pipelines, not their `sluice test` files.
	files := slices.DeleteFunc(all, func(f string) bool { return strings.HasSuffix(f, "_test.yaml") })
	if len(files) < 5 {
		t.Fatalf("found %d example pipelines: %v", len(files), files)
	}
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(yamlInstance(t, src)); err != nil {
				t.Errorf("%s does not validate against the schema: %v", file, err)
			}
		})
	}
}

// yamlInstance decodes a YAML document into the JSON value a schema
// validates, through JSON so that its numbers are JSON's.
func yamlInstance(t *testing.T, src []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		t.Fatalf("YAML: %v", err)
	}
	data, err := json.Marshal(yamlnode.Plain(v))
	if err != nil {
		t.Fatalf("YAML to JSON: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}
