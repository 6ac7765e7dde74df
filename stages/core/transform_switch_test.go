package core

import (
	"context"
	"reflect"
	"testing"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

func TestSwitch(t *testing.T) {
	cases := []any{
		map[string]any{"when": `level == "error"`, "route": "errors"},
		map[string]any{"when": `amount >= 1000`, "route": "big"},
		map[string]any{"when": `msg.key == "vip"`, "route": "big"},
	}
	withDefault := map[string]any{"cases": cases, "default": "rest"}
	noDefault := map[string]any{"cases": cases}
	tests := []struct {
		name      string
		raw       map[string]any
		in        string
		key       string
		wantRoute string // "" with wantOut false: filtered
		wantOut   bool
		wantErr   string
	}{
		{name: "first case", raw: withDefault, in: `{"level":"error","amount":5000}`, wantRoute: "errors", wantOut: true},
		{name: "second case", raw: withDefault, in: `{"level":"info","amount":5000}`, wantRoute: "big", wantOut: true},
		{name: "case on metadata", raw: withDefault, in: `{"level":"info","amount":1}`, key: "vip", wantRoute: "big", wantOut: true},
		{name: "default", raw: withDefault, in: `{"level":"info","amount":1}`, wantRoute: "rest", wantOut: true},
		{name: "no default filters", raw: noDefault, in: `{"level":"info","amount":1}`},
		{name: "expression fails", raw: noDefault, in: `{"level":"info"}`, wantErr: `switch: case 2 (route big): invalid operation: <nil> >= int (1:8) (in expression "amount >= 1000")`},
		{name: "not a boolean", raw: map[string]any{"cases": []any{map[string]any{"when": "level", "route": "a"}}}, in: `{"level":"x"}`,
			wantErr: `switch: case 1 (route a): when "level" produced a JSON string, want true or false`},
		{name: "null", raw: map[string]any{"cases": []any{map[string]any{"when": "nope", "route": "a"}}}, in: `{}`,
			wantErr: `switch: case 1 (route a): when "nope" produced a JSON null, want true or false`},
		{name: "not an object", raw: withDefault, in: `[1]`, wantErr: "record is a JSON array, not an object"},
		{name: "not json", raw: withDefault, in: `{`, wantErr: "invalid JSON: unexpected end of JSON input (at byte 1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := stagetest.NewTransform(t, "switch", tt.raw)
			payload := []byte(tt.in)
			in := stages.NewMessage(payload)
			if tt.key != "" {
				in.Header = stages.Header{stages.HeaderKey: {tt.key}}
			}
			out, err := tr.Process(context.Background(), in, nil)
			if tt.wantErr != "" {
				if !stages.IsPermanent(err) || len(err.Error()) < len(tt.wantErr) || err.Error()[:len(tt.wantErr)] != tt.wantErr {
					t.Fatalf("got %v, want a permanent error beginning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.wantOut {
				if len(out) != 0 {
					t.Fatalf("got %d outputs, want none", len(out))
				}
				return
			}
			if len(out) != 1 || out[0] != in || out[0].Route != tt.wantRoute {
				t.Fatalf("got %v, want the input on route %q", out, tt.wantRoute)
			}
			if got, _ := in.Payload(); &got[0] != &payload[0] {
				t.Fatal("switch replaced the payload")
			}
		})
	}
}

func TestSwitchRoutes(t *testing.T) {
	s := stagetest.Lookup(t, stages.RoleTransform, "switch")
	tests := []struct {
		raw  map[string]any
		want []string
	}{
		{map[string]any{"cases": []any{map[string]any{"when": "a", "route": "x"}, map[string]any{"when": "b", "route": "y"}, map[string]any{"when": "c", "route": "x"}}, "default": "y"},
			[]string{"x", "y"}},
		{map[string]any{"cases": []any{map[string]any{"when": "a", "route": "x"}}, "default": "other"}, []string{"x", "other"}},
		{map[string]any{"cases": []any{map[string]any{"when": "a", "route": "x"}}}, []string{"x"}},
	}
	for _, tt := range tests {
		if got := s.Routes(stagetest.Parse(t, s, tt.raw)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("routes of %v: got %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestSwitchParams(t *testing.T) {
	one := func(c map[string]any) map[string]any { return map[string]any{"cases": []any{c}} }
	ok := map[string]any{"when": "true", "route": "a"}
	stagetest.CheckParamErrors(t, "switch", []stagetest.ParamCase{
		{Raw: map[string]any{}, Param: "cases", Msg: `missing required parameter "cases"`},
		{Raw: map[string]any{"cases": []any{}}, Param: "cases", Msg: "cases: want at least one case"},
		{Raw: map[string]any{"cases": "x"}, Param: "cases", Msg: "want a list of mappings"},
		{Raw: map[string]any{"cases": []any{ok, map[string]any{"route": "b"}}}, Param: "cases", Msg: "cases: item 2: missing when"},
		{Raw: one(map[string]any{"when": "true"}), Param: "cases", Msg: "cases: item 1: missing route"},
		{Raw: one(map[string]any{"when": "true", "route": "_x"}), Param: "cases", Msg: `cases: item 1: route "_x": want letters, digits, '_' and '-', not beginning with '_'`},
		{Raw: one(map[string]any{"when": "true", "route": "a.b"}), Param: "cases", Msg: `cases: item 1: route "a.b"`},
		{Raw: one(map[string]any{"when": "true", "route": "a b"}), Param: "cases", Msg: `cases: item 1: route "a b"`},
		{Raw: one(map[string]any{"when": "a ==", "route": "a"}), Param: "cases", Msg: "cases: item 1: when does not compile: "},
		{Raw: one(map[string]any{"when": "true", "route": "a", "then": "b"}), Param: "cases", Msg: `cases: item 1: unknown key "then": a case has only when and route`},
		{Raw: one(map[string]any{"when": "true", "route": "a", "when2": []any{1}}), Param: "cases", Msg: "cases: item 1: when2: want a string, got a list"},
		{Raw: map[string]any{"cases": []any{ok}, "default": "_dlq"}, Param: "default", Msg: `default: route "_dlq"`},
		{Raw: map[string]any{"cases": []any{ok}, "default": ""}, Param: "default", Msg: `default: route ""`},
	})
}
