package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/internal/yamlnode"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/builtin"
)

// builtinRegistry returns a fresh registry of the built-in types.
func builtinRegistry(t testing.TB) *stages.Registry {
	t.Helper()
	reg := stages.NewRegistry()
	if err := builtin.Register(reg); err != nil {
		t.Fatal(err)
	}
	return reg
}

// compileSchema compiles the schema JSONSchema gives for reg.
func compileSchema(t testing.TB, reg *stages.Registry) *jsonschema.Schema {
	t.Helper()
	data, err := JSONSchema(reg)
	if err != nil {
		t.Fatalf("JSONSchema: %v", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("pipeline.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("pipeline.schema.json")
	if err != nil {
		t.Fatalf("compile the schema: %v", err)
	}
	return sch
}

// yamlInstance decodes a YAML document into the JSON value a schema
// validates: mappings with keys that are not strings get their keys as
// text, and the value goes through JSON so that its numbers are JSON's.
func yamlInstance(t testing.TB, src string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
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

func TestJSONSchemaAcceptsValidPipelines(t *testing.T) {
	reg := builtinRegistry(t)
	sch := compileSchema(t, reg)
	vars := map[string]string{"OUT": "/tmp/out"}
	tests := []struct{ name, src string }{
		{"minimal", `
name: p
stages:
  - {name: gen, source: generate}
  - {name: print, sink: stdout}
`},
		{"every setting and stage key", `
name: orders-etl
description: 42
settings:
  storage: memory
  retention: limits
  max_age: 0
  max_buffer: 10
  max_buffer_bytes: 512MiB
  dedup_window: 2m
  ack_wait: ${ACK_WAIT:-10s}
  max_deliver: 3
  backoff: [1s, 500ms, 0]
  max_outage: 1h30m
  replicas: 3
  max_out_of_orderness: 30s
  idle_timeout: 100ms
  fusion: "off"
stages:
  - name: read
    description: the orders
    source: file
    on_error: drop
    replicas: 1
    event_time: at
    key: customer
    partitions: 4
    with: {path: in.jsonl, format: jsonl}
  - name: clean
    transform: map
    from: [read]
    replicas: ${REPLICAS:-2}
    on_error: retry
    max_deliver: 2
    backoff: [1s]
    max_outage: 0s
    buffer: durable
    with:
      expr: 'merge($env, {"big": amount > 100})'
  - name: write
    sink: file
    with:
      path: ${OUT}/orders.jsonl
      dedupe: "false"
`},
		{"routes and windows", `
name: w
stages:
  - name: clicks
    source: generate
    with: {count: "1000", rate: 10.5, template: '{"user": seq % 10}'}
    key: user
    partitions: 2
  - name: triage
    transform: switch
    with:
      cases:
        - {when: 'user > 5', route: high}
      default: low
  - name: per-minute
    from: clicks
    transform: window
    with: {type: tumbling, size: 1m, key: user, aggregate: {n: count}, late: side}
  - name: high
    from: [triage.high, triage.low]
    sink: stdout
    with: ~
  - name: late
    from: per-minute.late
    sink: discard
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse("p.yaml", []byte(tt.src), Options{Registry: reg, LookupEnv: env(vars)}); err != nil {
				t.Fatalf("the test pipeline does not validate: %v", err)
			}
			if err := sch.Validate(yamlInstance(t, tt.src)); err != nil {
				t.Errorf("schema refuses a valid pipeline: %v", err)
			}
		})
	}
}

func TestJSONSchemaRefusesInvalidPipelines(t *testing.T) {
	reg := builtinRegistry(t)
	sch := compileSchema(t, reg)
	const ok = "name: p\nstages:\n  - {name: gen, source: generate}\n"
	tests := []struct {
		name, src string
		want      string // in the validation error
	}{
		{"unknown top-level key", ok + "stage: []\n", "stage"},
		{"missing name", "stages: [{name: gen, source: generate}]\n", "name"},
		{"no stages", "name: p\nstages: []\n", "minItems"},
		{"bad pipeline name", "name: Orders_ETL\nstages: [{name: gen, source: generate}]\n", "Orders_ETL"},
		{"unknown setting", ok + "settings: {ackwait: 1s}\n", "ackwait"},
		{"setting of the wrong type", ok + "settings: {max_buffer: lots}\n", "max_buffer"},
		{"setting not in its enum", ok + "settings: {storage: disk}\n", "storage"},
		{"setting duration without a unit", ok + "settings: {ack_wait: 30}\n", "ack_wait"},
		{"unknown stage key", ok + "  - {name: out, sink: stdout, replica: 2}\n", "replica"},
		{"stage named dlq", ok + "  - {name: dlq, sink: stdout}\n", "dlq"},
		{"two roles", ok + "  - {name: out, sink: stdout, transform: map}\n", "stdout"},
		{"no role", ok + "  - {name: out}\n", "sink"},
		{"unknown type", ok + "  - {name: out, sink: printer}\n", "/stages/1/sink"},
		{"source type as a sink", ok + "  - {name: out, sink: generate}\n", "/stages/1/sink"},
		{"unknown parameter", ok + "  - {name: out, sink: file, with: {path: o, mode: append, flush: 1s}}\n", "flush"},
		{"missing required parameter", ok + "  - {name: keep, transform: filter, with: {}}\n", "expr"},
		{"missing with", ok + "  - {name: keep, transform: filter}\n", "with"},
		{"parameter of the wrong type", ok + "  - {name: out, sink: file, with: {path: [a, b]}}\n", "/with/path"},
		{"int parameter not a number", "name: p\nstages:\n  - {name: gen, source: generate, with: {count: many}}\n", "/with/count"},
		{"bool parameter not a bool", ok + "  - {name: out, sink: file, with: {path: o, dedupe: yes}}\n", "/with/dedupe"},
		{"duration parameter a number", ok + "  - {name: slow, transform: delay, with: {duration: 5}}\n", "/with/duration"},
		{"parameter not in its enum", ok + "  - {name: out, sink: file, with: {path: o, mode: truncate}}\n", "/with/mode"},
		{"replicas not an int", ok + "  - {name: out, sink: stdout, replicas: two}\n", "replicas"},
		{"replicas on a source", "name: p\nstages:\n  - {name: gen, source: generate, replicas: 2}\n", "replicas"},
		{"from on a source", "name: p\nstages:\n  - {name: gen, source: generate, from: x}\n", "from"},
		{"key on a sink", ok + "  - {name: out, sink: stdout, key: id}\n", "key"},
		{"partitions without key", ok + "  - {name: m, transform: map, partitions: 2, with: {expr: x}}\n", "key"},
		{"partitions too many", ok + "  - {name: m, transform: map, key: id, partitions: 5000, with: {expr: x}}\n", "partitions"},
		{"bad input", ok + "  - {name: out, sink: stdout, from: gen._replay}\n", "from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse("p.yaml", []byte(tt.src), Options{Registry: reg, LookupEnv: env(nil)}); err == nil {
				t.Fatalf("the test pipeline validates: want an invalid one")
			}
			err := sch.Validate(yamlInstance(t, tt.src))
			if err == nil {
				t.Fatalf("schema accepts an invalid pipeline")
			}
			if !strings.Contains(fmt.Sprintf("%#v", err), tt.want) {
				t.Errorf("schema error does not mention %q:\n%#v", tt.want, err)
			}
		})
	}
}

func TestJSONSchemaFromSpecs(t *testing.T) {
	data, err := JSONSchema(testRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	var root struct {
		Schema string                    `json:"$schema"`
		Defs   map[string]map[string]any `json:"$defs"`
	}
	if err := json.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	if root.Schema != SchemaDraft {
		t.Errorf("$schema = %q, want %q", root.Schema, SchemaDraft)
	}
	// One definition per type and role, the file source and sink apart.
	for _, def := range []string{"source.gen", "source.file", "transform.map", "transform.filter", "transform.route", "sink.file", "sink.out"} {
		if root.Defs[def] == nil {
			t.Errorf("no definition %q", def)
		}
	}
	with := root.Defs["source.file"]["properties"].(map[string]any)["with"].(map[string]any)
	if got := fmt.Sprint(with["required"]); got != "[path]" {
		t.Errorf("source.file with.required = %s, want [path]", got)
	}
	if with["additionalProperties"] != false {
		t.Errorf("source.file with.additionalProperties = %v, want false", with["additionalProperties"])
	}
	format := with["properties"].(map[string]any)["format"].(map[string]any)
	if format["default"] != "jsonl" {
		t.Errorf("format default = %v, want jsonl", format["default"])
	}
	if !strings.Contains(string(data), `"jsonl",`) || !strings.Contains(string(data), `"csv"`) {
		t.Errorf("the enum of format is not in the schema")
	}
	// Documentation comes from the specs.
	reg := builtinRegistry(t)
	data, err = JSONSchema(reg)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := reg.LookupRole(stages.RoleTransform, "filter")
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(spec.Params[0].Doc)
	if doc = bytes.Trim(doc, `"`); !bytes.Contains(data, doc) {
		t.Errorf("the schema lacks the doc of filter's %s: %s", spec.Params[0].Name, doc)
	}
}

func TestJSONSchemaNoTypes(t *testing.T) {
	sch := compileSchema(t, stages.NewRegistry())
	if err := sch.Validate(yamlInstance(t, "name: p\nstages: [{name: gen, source: generate}]\n")); err == nil {
		t.Error("a schema without types accepts a stage")
	}
}

// TestJSONSchemaAcceptsDocExamples validates the example of every
// built-in type's documentation, the stages after "Example:", against
// the schema, as the stages of a pipeline.
func TestJSONSchemaAcceptsDocExamples(t *testing.T) {
	reg := builtinRegistry(t)
	sch := compileSchema(t, reg)
	n := 0
	for _, spec := range reg.Specs() {
		_, example, ok := strings.Cut(spec.Doc, "Example:\n")
		if !ok {
			continue
		}
		var stages []string
		for _, line := range strings.Split(example, "\n") {
			if line != "" && !strings.HasPrefix(line, "    ") {
				break // the end of the indented block
			}
			stages = append(stages, strings.TrimPrefix(line, "  "))
		}
		src := "name: p\nstages:\n" + strings.Join(stages, "\n") + "\n"
		t.Run(spec.Role().String()+"."+spec.Name, func(t *testing.T) {
			n++
			if err := sch.Validate(yamlInstance(t, src)); err != nil {
				t.Errorf("the example does not validate:\n%s\n%v", src, err)
			}
		})
	}
	if n < 5 {
		t.Errorf("found %d examples in the docs of the types", n)
	}
}
