package stages

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParamConvert(t *testing.T) {
	tests := []struct {
		name    string
		typ     ParamType
		in      any
		want    any
		wantErr string
	}{
		{"string from int", TypeString, 3, "3", ""},
		{"int from string", TypeInt, " 7 ", 7, ""},
		{"int from float", TypeInt, 2.5, nil, `want an integer, got "2.5"`},
		{"duration", TypeDuration, "1m30s", 90 * time.Second, ""},
		{"list from scalar", TypeStringList, "a", []string{"a"}, ""},
		{"list", TypeStringList, []any{"a", 1}, []string{"a", "1"}, ""},
		{"map", TypeStringMap, map[string]any{"A": "x", "B": 2, "C": true}, map[string]string{"A": "x", "B": "2", "C": "true"}, ""},
		{"map of a list", TypeStringMap, []any{"a"}, nil, "want a mapping, got a list"},
		{"map with a nested value", TypeStringMap, map[string]any{"A": []any{1}}, nil, "A: want a string, got a list"},
		{"map list", TypeMapList, []any{map[string]any{"when": "x > 1", "route": "big"}, map[string]any{"route": 3}},
			[]map[string]string{{"when": "x > 1", "route": "big"}, {"route": "3"}}, ""},
		{"map list of a mapping", TypeMapList, map[string]any{"a": "b"}, nil, "want a list of mappings, got a mapping"},
		{"map list item not a mapping", TypeMapList, []any{map[string]any{}, "x"}, nil, "item 2: want a mapping, got a scalar"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Param{Name: "p", Type: tt.typ}
			got, err := p.Convert(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidParam) {
					t.Fatalf("got %v, %v; want error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, %v; want %#v", got, err, tt.want)
			}
		})
	}
}
