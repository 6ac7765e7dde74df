package core

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// FuzzMessagePath puts arbitrary payload bytes through map and filter as
// the runner does: neither may panic; a payload they cannot handle gives a
// permanent error (the runner dead-letters it at once), and what passes is
// valid JSON.
func FuzzMessagePath(f *testing.F) {
	for _, seed := range []string{
		`{"amount": 12.5, "id": 9007199254740993, "name": "ann"}`,
		`{"amount": "12", "tags": ["a", {"b": null}]}`,
		`{"amount": -1}`,
		`{"a":`,
		`[1, 2]`,
		`"just a string"`,
		`null`,
		"\xff\xfe{}",
		"{\"name\": \"\xff\"}",
		`{"amount": 1e400}`,
		`{"amount": 1, "amount": "dup"}`,
		strings.Repeat(`{"x":`, 1000) + strings.Repeat(`}`, 1000),
		"",
	} {
		f.Add([]byte(seed))
	}
	reg := stagetest.NewRegistry()
	build := func(name, expr string) stages.Transform {
		spec, err := reg.LookupRole(stages.RoleTransform, name)
		if err != nil {
			f.Fatal(err)
		}
		params, errs := spec.ParseParams(map[string]any{"expr": expr})
		if len(errs) > 0 {
			f.Fatal(errs)
		}
		tr, err := spec.NewTransform(params, stages.Info{})
		if err != nil {
			f.Fatal(err)
		}
		return tr
	}
	mapper := build("map", `merge($env, {"double": amount * 2, "label": upper(string(name ?? "none")), "n": len(tags ?? [])})`)
	filter := build("filter", `double >= 0 && label != "SKIP"`)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, payload []byte) {
		in := stages.NewMessage(payload)
		in.Header = stages.Header{stages.HeaderMsgID: []string{"p/s/r1/1"}}
		outs, err := mapper.Process(ctx, in, nil)
		if err != nil {
			if !stages.IsPermanent(err) {
				t.Fatalf("map: an error on a record must be permanent: %v", err)
			}
			return
		}
		for _, o := range outs {
			kept, err := filter.Process(ctx, o, nil)
			if err != nil {
				if !stages.IsPermanent(err) {
					t.Fatalf("filter: an error on a record must be permanent: %v", err)
				}
				continue
			}
			for _, k := range kept {
				b, err := k.Payload()
				if err != nil {
					if !stages.IsPermanent(err) {
						t.Fatalf("encode: an error on a record must be permanent: %v", err)
					}
					continue
				}
				if !json.Valid(b) {
					t.Fatalf("output is not JSON: %q", b)
				}
			}
		}
	})
}
