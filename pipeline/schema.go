package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/stages"
)

// SchemaDraft is the JSON Schema dialect of [JSONSchema].
const SchemaDraft = "https://json-schema.org/draft/2020-12/schema"

// Patterns of the schema, valid both as Go (RE2) and ECMA-262 regular
// expressions, since editors check them with the latter.
const (
	// interpolatedPattern finds a ${VAR} or ${VAR:-default} in a value.
	interpolatedPattern = `\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}`
	// durationPattern is what time.ParseDuration takes, without a sign.
	durationPattern = `^\s*\+?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)\s*$`
	intPattern      = `^\s*[-+]?[0-9]+\s*$`
	floatPattern    = `^\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$`
	boolPattern     = `^(1|t|T|TRUE|true|True|0|f|F|FALSE|false|False)$`
	sizePattern     = `^\s*[0-9]+\s*(KiB|MiB|GiB|TiB|KB|MB|GB|TB|B)?\s*$`
	inputPattern    = `^[a-z][a-z0-9-]*(\.[A-Za-z0-9-][A-Za-z0-9_-]*)?$`
)

// jsObj is a JSON object of the schema.
type jsObj = map[string]any

// jsRef refers to a definition of the schema.
func jsRef(def string) jsObj { return jsObj{"$ref": "#/$defs/" + def} }

// jsOrVar lets a value be given by a variable: the value of s, or a string
// with a ${VAR} in it. Interpolation happens on the text of the file,
// before it is decoded, so `replicas: ${N:-2}` is the int 2; the schema
// cannot know the value and takes any reference.
func jsOrVar(s jsObj) jsObj { return jsObj{"anyOf": []any{s, jsRef("interpolated")}} }

// jsDescribed returns s with a description.
func jsDescribed(s jsObj, doc string) jsObj {
	out := make(jsObj, len(s)+1)
	for k, v := range s {
		out[k] = v
	}
	if doc != "" {
		out["description"] = doc
	}
	return out
}

// JSONSchema returns a JSON Schema (draft 2020-12, indented) of the
// pipeline files whose stage types are those of reg (nil means
// stages.Default): the top-level keys, the settings, and each stage as one
// of the registered types of its role, its `with` mapping holding only
// that type's parameters, the required ones required, each described by
// its documentation.
//
// The schema is for editors and linters: a file that validates against it
// may still be refused by [Parse], which checks what a schema cannot (the
// stage graph, minimums such as ack_wait >= 1s, expressions that must
// compile, a spec's own Check). Wherever a value may hold a ${VAR} the
// schema takes any string with one, since the variable's value is not
// known; a role key (source, transform, sink) must name a type as it is.
// The error is that of encoding the schema, such as a parameter default
// that is not JSON.
func JSONSchema(reg *stages.Registry) ([]byte, error) {
	if reg == nil {
		reg = stages.Default
	}
	defs := commonDefs()
	roles := jsObj{}
	var oneRole, byType []any
	for _, role := range stages.Roles {
		oneRole = append(oneRole, jsObj{"required": []string{role.String()}})
		names := reg.Names(role)
		if len(names) == 0 {
			roles[role.String()] = false // no type of the role is registered
			continue
		}
		roles[role.String()] = jsObj{"enum": names, "description": fmt.Sprintf("The %s type: sluice stages lists them.", role)}
	}
	for _, spec := range reg.Specs() {
		role, name := spec.Role().String(), spec.Role().String()+"."+spec.Name
		defs[name] = stageSchema(spec)
		byType = append(byType, jsObj{
			"if":   jsObj{"required": []string{role}, "properties": jsObj{role: jsObj{"const": spec.Name}}},
			"then": jsRef(name),
		})
	}
	stage := jsObj{
		"description": "A stage: a name, exactly one of source, transform or sink naming its type, and the type's parameters under with.",
		"type":        "object",
		"required":    []string{"name"},
		"properties":  roles,
		"oneOf":       oneRole,
	}
	if len(byType) > 0 {
		stage["allOf"] = byType
	}
	defs["stage"] = stage
	// A struct, not a map, so that $schema comes first and $defs last.
	root := struct {
		Schema               string   `json:"$schema"`
		Title                string   `json:"title"`
		Description          string   `json:"description"`
		Type                 string   `json:"type"`
		Required             []string `json:"required"`
		AdditionalProperties bool     `json:"additionalProperties"`
		Properties           jsObj    `json:"properties"`
		Defs                 jsObj    `json:"$defs"`
	}{
		Schema:      SchemaDraft,
		Title:       "sluice pipeline",
		Description: "A sluice pipeline file (docs/pipeline-yaml.md).",
		Type:        "object",
		Required:    []string{"name", "stages"},
		Properties: jsObj{
			"name":        jsDescribed(jsRef("name"), "Name of the pipeline: [a-z][a-z0-9-]*, at most 64 characters; it names its streams and subjects."),
			"description": jsDescribed(jsRef("text"), "Free text."),
			"settings":    settingsSchema(),
			"plugins": jsObj{
				"description": "Go plugins (.so) to load stage types from, relative to the pipeline file.",
				"type":        []string{"array", "null"},
				"items":       jsObj{"type": "string"},
			},
			"stages": jsObj{
				"description": "The stages, in order: a stage without from reads the one listed before it.",
				"type":        "array",
				"minItems":    1,
				"items":       jsRef("stage"),
			},
		},
		Defs: defs,
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false) // docs say a >= b
	enc.SetIndent("", "  ")
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("sluice: pipeline schema: %w", err)
	}
	return out.Bytes(), nil
}

// commonDefs returns the definitions that the settings and every stage
// share.
func commonDefs() jsObj {
	name := jsObj{"type": "string", "pattern": namePattern.String(), "maxLength": maxNameLen}
	stageName := jsDescribed(name, "")
	stageName["not"] = jsObj{"const": schema.DLQStage}
	input := jsObj{"type": "string", "pattern": inputPattern}
	durations := jsObj{"type": "array", "items": jsRef("durationOrZero")}
	return jsObj{
		"interpolated": jsObj{
			"description": "A value given by ${VAR} or ${VAR:-default}, replaced by the variable's value before the file is decoded.",
			"type":        "string",
			"pattern":     interpolatedPattern,
		},
		"text":      jsObj{"type": []string{"string", "number", "boolean", "null"}},
		"scalar":    jsObj{"type": []string{"string", "number", "boolean"}},
		"name":      jsOrVar(name),
		"stageName": jsDescribed(jsOrVar(stageName), "Name of the stage: [a-z][a-z0-9-]*, at most 64 characters, unique in the pipeline, not dlq."),
		"duration": jsOrVar(jsObj{
			"description": "A Go duration such as 500ms, 30s, 2m or 1h30m.",
			"type":        "string",
			"pattern":     durationPattern,
		}),
		"durationOrZero": jsOrVar(jsObj{
			"description": "A Go duration such as 500ms, 30s, 2m or 1h30m, or 0.",
			"anyOf":       []any{jsObj{"type": "string", "pattern": durationPattern}, jsObj{"const": 0}},
		}),
		"durations": durations,
		"int":       jsOrVar(jsObj{"anyOf": []any{jsObj{"type": "integer"}, jsObj{"type": "string", "pattern": intPattern}}}),
		"float":     jsOrVar(jsObj{"anyOf": []any{jsObj{"type": "number"}, jsObj{"type": "string", "pattern": floatPattern}}}),
		"bool": jsOrVar(jsObj{"anyOf": []any{
			jsObj{"type": "boolean"},
			jsObj{"type": "string", "pattern": boolPattern}, // what strconv.ParseBool takes
		}}),
		"stringList": jsObj{"anyOf": []any{jsRef("scalar"), jsObj{"type": "array", "items": jsRef("scalar")}}},
		"stringMap":  jsObj{"type": "object", "additionalProperties": jsRef("scalar")},
		"mapList":    jsObj{"type": "array", "items": jsRef("stringMap")},
		"from": jsDescribed(jsObj{"anyOf": []any{
			input,
			jsObj{"type": "array", "minItems": 1, "uniqueItems": true, "items": jsOrVar(input)},
			jsRef("interpolated"),
		}}, "What the stage reads: a stage name, stage.route for one route of a routing stage, or a list of them (fan-in). Default: the stage listed just before."),
	}
}

// jsIntMin is an int of at least min, or a variable.
func jsIntMin(min int, doc string) jsObj {
	return jsDescribed(jsOrVar(jsObj{"type": "integer", "minimum": min}), doc)
}

// jsEnum is one of values, or a variable.
func jsEnum(doc string, values ...string) jsObj {
	return jsDescribed(jsOrVar(jsObj{"enum": values}), doc)
}

// settingsSchema describes the settings mapping, as settings.go decodes it.
func settingsSchema() jsObj {
	props := jsObj{
		"storage":   jsEnum("Storage of the stage streams: file (default) or memory.", "file", "memory"),
		"retention": jsEnum("interest (default): a message is deleted once every reading stage acked it; limits: kept for max_age.", "interest", "limits"),
		"max_age":   jsDescribed(jsRef("durationOrZero"), "With retention: limits, how long messages are kept. Default 24h."),
		"max_buffer": jsIntMin(1, fmt.Sprintf("With retention: interest, messages a stage stream holds before the stage feeding it waits. Default %d.",
			DefaultMaxBuffer)),
		"max_buffer_bytes": jsDescribed(jsOrVar(jsObj{"anyOf": []any{
			jsObj{"type": "integer", "minimum": minBufferBytes},
			jsObj{"type": "string", "pattern": sizePattern},
		}}), "With retention: interest, bytes a stage stream holds before the stage feeding it waits: 512MiB, 2GB, or a number of bytes; at least 1MiB."),
		"dedup_window":         jsDescribed(jsRef("duration"), "JetStream duplicate window of the stage streams; keep it above ack_wait. Default 1m."),
		"ack_wait":             jsDescribed(jsRef("duration"), "Time a worker has to answer a message before JetStream redelivers it; at least 1s. Default 30s."),
		"max_deliver":          jsIntMin(1, fmt.Sprintf("Attempts before a failing message goes to the dead-letter stream. Default %d.", DefaultMaxDeliver)),
		"backoff":              jsDescribed(jsRef("durations"), "Delay before retry n is backoff[n-1], the last repeating. Default [1s, 5s, 30s]."),
		"max_outage":           jsDescribed(jsRef("durationOrZero"), "How long a stage may be held by a destination that is down before the run fails; 0s (default) holds it until it is back."),
		"replicas":             jsDescribed(jsOrVar(jsObj{"type": "integer", "minimum": 1, "maximum": 5}), "On a JetStream cluster, how many servers keep a copy of each stream and of the state bucket: 1 to 5. Default 1."),
		"max_out_of_orderness": jsDescribed(jsRef("durationOrZero"), "How far behind the latest event time a record may be and still be on time. Default 0s."),
		"idle_timeout":         jsDescribed(jsRef("duration"), "How long a source or worker that sends nothing may hold back the watermark; at least 100ms. Default 30s."),
		"fusion":               jsEnum("auto (default): adjacent stages that need no stream between them run fused; off: every boundary is a stream.", FusionAuto, FusionOff),
	}
	return jsObj{
		"description":          "Pipeline-wide options.",
		"type":                 []string{"object", "null"},
		"additionalProperties": false,
		"properties":           props,
	}
}

// stageSchema describes a stage of the type of spec: the stage keys its
// role takes, as stage.go decodes them, and its parameters.
func stageSchema(spec *stages.Spec) jsObj {
	role := spec.Role()
	props := jsObj{
		"name":        jsRef("stageName"),
		"description": jsDescribed(jsRef("text"), "Free text."),
		role.String(): jsObj{"const": spec.Name, "description": spec.Summary},
		"buffer":      jsEnum("durable keeps a stream before this stage even where it could run fused; default auto.", BufferAuto, BufferDurable),
		"with":        withSchema(spec),
	}
	required := []string{"name", role.String()}
	for _, p := range spec.Params {
		if p.Required {
			required = append(required, "with")
			break
		}
	}
	s := jsObj{
		"title":                role.String() + " " + spec.Name,
		"description":          spec.Summary,
		"type":                 "object",
		"required":             required,
		"additionalProperties": false,
		"properties":           props,
	}
	if role == stages.RoleSource {
		props["replicas"] = jsDescribed(jsOrVar(jsObj{"const": 1}), "A source runs as one instance.")
		props["on_error"] = jsEnum("What to do with a record the source could not read: dead_letter (default) or drop.", OnErrorDeadLetter, OnErrorDrop)
	} else {
		props["from"] = jsRef("from")
		props["replicas"] = jsIntMin(1, "Workers of this stage in each runner process. Default 1.")
		props["on_error"] = jsEnum("What to do with a message the stage fails on: retry (default), dead_letter or drop.", OnErrorRetry, OnErrorDeadLetter, OnErrorDrop)
		props["max_deliver"] = jsIntMin(1, "Attempts of this stage, with on_error: retry. Default: the setting.")
		props["backoff"] = jsDescribed(jsRef("durations"), "Retry delays of this stage, with on_error: retry. Default: the setting.")
		props["max_outage"] = jsDescribed(jsRef("durationOrZero"), "How long this stage may be held by a destination that is down before the run fails; 0s holds it until it is back. Default: the setting.")
	}
	if role != stages.RoleSink {
		props["event_time"] = jsDescribed(jsRef("scalar"), "Expression giving the event time of each output: a time, RFC 3339 text, Unix seconds or milliseconds.")
		props["key"] = jsDescribed(jsRef("scalar"), "Expression giving the key of each output, in the Sluice-Key header.")
		props["partitions"] = jsDescribed(jsOrVar(jsObj{"type": "integer", "minimum": 1, "maximum": MaxPartitions}),
			fmt.Sprintf("Split the output into that many partitions by key (1 to %d; needs key).", MaxPartitions))
		s["dependentRequired"] = jsObj{"partitions": []string{"key"}}
	}
	return s
}

// withSchema describes the with mapping of a stage of the type of spec.
func withSchema(spec *stages.Spec) jsObj {
	props := jsObj{}
	var required []string
	for i := range spec.Params {
		p := &spec.Params[i]
		props[p.Name] = paramSchema(p)
		if p.Required {
			required = append(required, p.Name)
		}
	}
	s := jsObj{
		"description":          fmt.Sprintf("Parameters of %s %s (sluice stages %s).", spec.Role(), spec.Name, spec.Name),
		"type":                 []string{"object", "null"},
		"additionalProperties": false,
		"properties":           props,
	}
	if len(required) > 0 {
		s["type"] = "object"
		s["required"] = required
	}
	return s
}

// paramSchema describes one parameter as stages.Param.Convert takes it.
func paramSchema(p *stages.Param) jsObj {
	var s jsObj
	switch p.Type {
	case stages.TypeString:
		s = jsRef("scalar")
		if len(p.Enum) > 0 {
			s = jsOrVar(jsObj{"enum": p.Enum})
		}
	case stages.TypeExpr:
		s = jsRef("scalar")
	case stages.TypeInt:
		s = jsRef("int")
	case stages.TypeFloat:
		s = jsRef("float")
	case stages.TypeBool:
		s = jsRef("bool")
	case stages.TypeDuration:
		s = jsRef("duration")
	case stages.TypeStringList:
		s = jsRef("stringList")
	case stages.TypeStringMap:
		s = jsRef("stringMap")
	case stages.TypeMapList:
		s = jsRef("mapList")
	default:
		s = jsObj{} // a type this schema does not know: anything
	}
	doc := p.Doc
	if p.Type == stages.TypeExpr {
		doc = "Expression. " + doc
	}
	s = jsDescribed(s, doc)
	if p.Default != nil {
		s["default"] = jsonDefault(p.Default)
	}
	return s
}

// jsonDefault turns a parameter default into JSON: a duration as its text.
func jsonDefault(v any) any {
	if d, ok := v.(time.Duration); ok {
		return d.String()
	}
	return v
}
