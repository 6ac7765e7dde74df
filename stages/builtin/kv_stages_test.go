package builtin

import (
	"errors"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// Every type that keeps state in NATS refuses to build without a
// connection, saying why.
func TestKVStagesNeedConn(t *testing.T) {
	r := stagetest.NewRegistry()
	tests := []struct {
		role stages.Role
		name string
		raw  map[string]any
	}{
		{stages.RoleTransform, "dedupe", map[string]any{"key": "id"}},
		{stages.RoleTransform, "rate_limit", map[string]any{"rate": 10}},
		{stages.RoleSink, "kv", map[string]any{"bucket": "b", "key": "id"}},
		{stages.RoleSource, "kv_watch", map[string]any{"bucket": "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := r.LookupRole(tt.role, tt.name)
			if err != nil {
				t.Fatal(err)
			}
			p := stagetest.Parse(t, s, tt.raw)
			switch tt.role {
			case stages.RoleSource:
				_, err = s.NewSource(p, stages.Info{})
			case stages.RoleTransform:
				_, err = s.NewTransform(p, stages.Info{})
			case stages.RoleSink:
				_, err = s.NewSink(p, stages.Info{})
			}
			if !errors.Is(err, stages.ErrNoConn) || !strings.HasPrefix(err.Error(), tt.name+": ") {
				t.Fatalf("got %v, want ErrNoConn naming %s", err, tt.name)
			}
		})
	}
}

func TestKVParamChecks(t *testing.T) {
	r := stagetest.NewRegistry()
	tests := []struct {
		role  stages.Role
		name  string
		raw   map[string]any
		param string // the parameter the error names
	}{
		{stages.RoleTransform, "dedupe", map[string]any{"key": "id", "ttl": "10ms"}, "ttl"},
		{stages.RoleTransform, "dedupe", map[string]any{"key": "id", "bucket": "a.b"}, "bucket"},
		{stages.RoleTransform, "dedupe", map[string]any{"key": "id +"}, "key"},
		{stages.RoleTransform, "rate_limit", map[string]any{"rate": 0}, "rate"},
		{stages.RoleTransform, "rate_limit", map[string]any{"rate": -1}, "rate"},
		{stages.RoleTransform, "rate_limit", map[string]any{"rate": 1, "burst": -1}, "burst"},
		{stages.RoleTransform, "rate_limit", map[string]any{"rate": 0.001, "burst": 1000}, "burst"},
		{stages.RoleSink, "kv", map[string]any{"bucket": "", "key": "id"}, "bucket"},
		{stages.RoleSink, "kv", map[string]any{"bucket": "b c", "key": "id"}, "bucket"},
		{stages.RoleSink, "kv", map[string]any{"bucket": "b", "key": "id", "value": "("}, "value"},
		{stages.RoleSource, "kv_watch", map[string]any{"bucket": "b", "include_history": true, "updates_only": true}, "updates_only"},
		{stages.RoleSource, "kv_watch", map[string]any{"bucket": "b", "keys": []any{"a.>.b"}}, "keys"},
		{stages.RoleSource, "kv_watch", map[string]any{"bucket": "b", "keys": []any{"a..b"}}, "keys"},
		{stages.RoleSource, "kv_watch", map[string]any{"bucket": "b", "keys": []any{"a b"}}, "keys"},
		{stages.RoleSource, "kv_watch", map[string]any{"bucket": "b", "deletes": "keep"}, "deletes"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+tt.param, func(t *testing.T) {
			s, err := r.LookupRole(tt.role, tt.name)
			if err != nil {
				t.Fatal(err)
			}
			_, errs := s.ParseParams(tt.raw)
			if len(errs) != 1 {
				t.Fatalf("got %v, want one error", errs)
			}
			var pe *stages.ParamError
			if !errors.As(errs[0], &pe) || pe.Param != tt.param || !errors.Is(errs[0], stages.ErrInvalidParam) {
				t.Fatalf("got %v, want an error on %s", errs[0], tt.param)
			}
		})
	}
}
