package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"text/template"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/records"
)

// templateName is the name of a template stage's template, which Go's
// messages begin with.
const templateName = "template"

func templateSpec() stages.Spec {
	return stages.Spec{
		Name:      "template",
		Stateless: true,
		Summary:   "Render a Go text/template over each record",
		Doc: `Renders template (Go text/template syntax) with the record as its dot: ` +
			`{{.name}} is a field, {{.user.id}} a nested one. Without field the ` +
			`rendered text is the output's payload, as raw bytes rather than JSON ` +
			`(write it with a sink that takes text, such as the file sink with ` +
			`format: lines), and the record may be any JSON value. With field the ` +
			`record must be an object and the text is stored in that top-level field.

Values print as in JSON: numbers without exponents where JSON has none, ` +
			`null as nothing; objects and arrays print in Go's notation, so write ` +
			`them with json. A field the record lacks is an error (the message goes ` +
			`to the dead-letter stream naming the field): use get to read a field ` +
			`that may be missing. Functions besides Go's built-ins (printf, len, ` +
			`index, eq, and, or, not ...):
  - json V: V encoded as JSON;
  - upper V, lower V: V's text in upper or lower case;
  - default D V: V, or D when V is null, missing (through get) or "";
  - join SEP LIST: the elements of an array as text, separated by SEP;
  - get OBJ KEY: the field KEY of object OBJ, null when it has none.

The template is parsed when the pipeline is validated. A record that is ` +
			`not JSON, or on which the template fails, goes to the dead-letter stream.

Example:

    - name: line
      transform: template
      with:
        template: '{{.id}}: {{upper .customer}} paid {{printf "%.2f" .amount}}{{with get . "note"}} ({{.}}){{end}}'`,
		Params: []stages.Param{
			{Name: "template", Type: stages.TypeString, Required: true, Doc: "Go text/template rendered with the record as dot."},
			{Name: "field", Type: stages.TypeString, Doc: "Top-level field that receives the rendered text; without it the text is the payload."},
		},
		Check:        checkTemplate,
		NewTransform: newTemplateTransform,
	}
}

func checkTemplate(p stages.Params) error {
	_, err := newTemplateConfig(p)
	return err
}

// newTemplateConfig checks the parameters and parses the template.
func newTemplateConfig(p stages.Params) (*template.Template, error) {
	if p.Has("field") && p.String("field") == "" {
		return nil, stages.ParamErrorf("field", "must not be empty")
	}
	return parseTemplate(p.String("template"))
}

// parseTemplate parses the template parameter with the stage's functions.
func parseTemplate(src string) (*template.Template, error) {
	if src == "" {
		return nil, stages.ParamErrorf("template", "must not be empty")
	}
	t, err := template.New(templateName).Option("missingkey=error").Funcs(templateFuncs).Parse(src)
	if err != nil {
		return nil, stages.ParamErrorf("template", "does not parse: %s", templateError(err))
	}
	return t, nil
}

// templateError returns Go's message for a template error without its
// "template: NAME:" prefix, which names our template in every message.
func templateError(err error) string {
	s := err.Error()
	if rest, ok := strings.CutPrefix(s, "template: "+templateName+":"); ok {
		return "line " + rest
	}
	return s
}

// templateTransform renders a template over each record.
type templateTransform struct {
	tmpl  *template.Template
	field string // "" for the payload
	buf   bytes.Buffer
}

var _ stages.Transform = (*templateTransform)(nil)

func newTemplateTransform(p stages.Params, _ stages.Info) (stages.Transform, error) {
	t, err := newTemplateConfig(p)
	if err != nil {
		return nil, err
	}
	return &templateTransform{tmpl: t, field: p.String("field")}, nil
}

func (t *templateTransform) Process(_ context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	var rec map[string]any
	var data any
	if t.field != "" {
		r, err := in.Record()
		if err != nil {
			return out, err
		}
		rec, data = r, r
	} else {
		v, err := in.Value()
		if err != nil {
			return out, err
		}
		data = v
	}
	t.buf.Reset()
	if err := t.tmpl.Execute(&t.buf, toTemplate(data)); err != nil {
		return out, stages.Permanent(fmt.Errorf("template: %s", templateError(err)))
	}
	if t.field == "" {
		in.SetPayload(bytes.Clone(t.buf.Bytes()))
	} else {
		rec[t.field] = t.buf.String()
		in.SetValue(rec)
	}
	return append(out, in), nil
}

func (t *templateTransform) Close(context.Context) error { return nil }

// templateFloat is a number of a record as a template sees it: it prints
// as JSON writes it (1234567.5, not Go's 1.2345675e+06).
type templateFloat float64

func (f templateFloat) String() string { return records.FormatFloat(float64(f)) }

// templateNull is null as a template sees it: a nil *templateNull prints
// as nothing and is false in if and with.
type templateNull struct{}

func (*templateNull) String() string { return "" }

var templateNil *templateNull

// toTemplate returns a copy of a decoded record in which numbers and
// nulls print as in JSON (see templateFloat, templateNull).
func toTemplate(v any) any {
	switch x := v.(type) {
	case nil:
		return templateNil
	case float64:
		return templateFloat(x)
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = toTemplate(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = toTemplate(e)
		}
		return s
	}
	return v
}

// fromTemplate undoes toTemplate.
func fromTemplate(v any) any {
	switch x := v.(type) {
	case *templateNull:
		return nil
	case templateFloat:
		return float64(x)
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = fromTemplate(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = fromTemplate(e)
		}
		return s
	}
	return v
}

// isTemplateNull reports whether a template value is null.
func isTemplateNull(v any) bool {
	if v == nil {
		return true
	}
	_, ok := v.(*templateNull)
	return ok
}

// templateText is the text of a value as a template prints it.
func templateText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if isTemplateNull(v) {
		return ""
	}
	return fmt.Sprint(v)
}

// templateFuncs are the functions a template may call besides Go's.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := stages.EncodeJSON(fromTemplate(v))
		if err != nil {
			return "", fmt.Errorf("json: %w", err)
		}
		return string(b), nil
	},
	"upper": func(v any) string { return strings.ToUpper(templateText(v)) },
	"lower": func(v any) string { return strings.ToLower(templateText(v)) },
	"default": func(def, v any) any {
		if isTemplateNull(v) || v == "" {
			return def
		}
		return v
	},
	"join": func(sep string, list any) (string, error) {
		if isTemplateNull(list) {
			return "", nil
		}
		l, ok := list.([]any)
		if !ok {
			return "", errors.New("join: want an array")
		}
		parts := make([]string, len(l))
		for i, e := range l {
			parts[i] = templateText(e)
		}
		return strings.Join(parts, sep), nil
	},
	"get": func(obj any, key string) (any, error) {
		if isTemplateNull(obj) {
			return templateNil, nil
		}
		m, ok := obj.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("get %q: want an object", key)
		}
		if v, ok := m[key]; ok {
			return v, nil
		}
		return templateNil, nil
	},
}
