package pipeline

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/stages"
)

// stageView is what a test compares of a decoded stage.
type stageView struct {
	Name     string
	Role     stages.Role
	Type     string
	From     []string
	Replicas int
	Params   map[string]any // the parameters that are set or defaulted
}

func views(p *Pipeline) []stageView {
	out := make([]stageView, len(p.Stages))
	for i, s := range p.Stages {
		v := stageView{Name: s.Name, Role: s.Role, Type: s.Type, Replicas: s.Replicas, Params: map[string]any{}}
		for _, in := range s.From {
			v.From = append(v.From, in.String())
		}
		for _, decl := range s.Spec.Params {
			if s.Params.Has(decl.Name) {
				v.Params[decl.Name] = s.Params.Get(decl.Name)
			}
		}
		out[i] = v
	}
	return out
}

const designExample = `name: orders-etl
description: CSV orders to JSON lines, big orders only
settings:
  storage: memory
  retention: limits
  max_age: 1h30m
  max_buffer: 500
  dedup_window: 5m
  ack_wait: 1m
  max_deliver: 3
  backoff: [2s, 10s]
  replicas: 3
stages:
  - name: read
    source: file
    with:
      path: examples/etl/orders.csv
      format: csv
  - name: clean
    transform: map
    replicas: 4
    with:
      expr: '{"id": int(id), "customer": upper(customer), "amount": float(amount)}'
  - name: big
    transform: filter
    with:
      expr: 'amount >= 100'
  - name: write
    from: [big]
    sink: file
    with:
      path: out/big-orders.jsonl
`

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []stageView
	}{{
		name: "design example",
		src:  designExample,
		want: []stageView{
			{Name: "read", Role: stages.RoleSource, Type: "file", Replicas: 1,
				Params: map[string]any{"path": "examples/etl/orders.csv", "format": "csv"}},
			{Name: "clean", Role: stages.RoleTransform, Type: "map", From: []string{"read"}, Replicas: 4,
				Params: map[string]any{"expr": `{"id": int(id), "customer": upper(customer), "amount": float(amount)}`}},
			{Name: "big", Role: stages.RoleTransform, Type: "filter", From: []string{"clean"}, Replicas: 1,
				Params: map[string]any{"expr": "amount >= 100"}},
			{Name: "write", Role: stages.RoleSink, Type: "file", From: []string{"big"}, Replicas: 1,
				Params: map[string]any{"path": "out/big-orders.jsonl"}},
		},
	}, {
		name: "fan-out",
		src: `name: fan-out
stages:
  - {name: src, source: gen, with: {count: 10}}
  - {name: a, sink: out}
  - {name: b, sink: out, from: src}
`,
		want: []stageView{
			{Name: "src", Role: stages.RoleSource, Type: "gen", Replicas: 1, Params: map[string]any{"count": 10}},
			{Name: "a", Role: stages.RoleSink, Type: "out", From: []string{"src"}, Replicas: 1, Params: map[string]any{}},
			{Name: "b", Role: stages.RoleSink, Type: "out", From: []string{"src"}, Replicas: 1, Params: map[string]any{}},
		},
	}, {
		name: "fan-in and routes",
		src: `name: fan-in
stages:
  - {name: one, source: gen}
  - {name: two, transform: route, from: one, with: {routes: [left, ""]}}
  - name: both
    sink: out
    from: [one, two.left]
  - {name: rest, sink: out, from: two}
`,
		want: []stageView{
			{Name: "one", Role: stages.RoleSource, Type: "gen", Replicas: 1, Params: map[string]any{"count": 0}},
			{Name: "two", Role: stages.RoleTransform, Type: "route", From: []string{"one"}, Replicas: 1, Params: map[string]any{"routes": []string{"left", ""}}},
			{Name: "both", Role: stages.RoleSink, Type: "out", From: []string{"one", "two.left"}, Replicas: 1, Params: map[string]any{}},
			{Name: "rest", Role: stages.RoleSink, Type: "out", From: []string{"two"}, Replicas: 1, Params: map[string]any{}},
		},
	}, {
		name: "default from, null with and typed params",
		src: `name: default-from
stages:
  - name: src
    source: gen
    with:
  - name: m
    transform: map
    with: {expr: x + 1, n: 7}
  - name: sink
    sink: file
    with: {path: 42, mode: append}
`,
		want: []stageView{
			{Name: "src", Role: stages.RoleSource, Type: "gen", Replicas: 1, Params: map[string]any{"count": 0}},
			{Name: "m", Role: stages.RoleTransform, Type: "map", From: []string{"src"}, Replicas: 1,
				Params: map[string]any{"expr": "x + 1", "n": 7}},
			{Name: "sink", Role: stages.RoleSink, Type: "file", From: []string{"m"}, Replicas: 1,
				Params: map[string]any{"path": "42", "mode": "append"}},
		},
	}, {
		name: "anchors and aliases",
		src: `name: aliases
stages:
  - name: src
    source: file
    with: &in {path: in.csv}
  - name: again
    source: file
    with: *in
  - {name: sink, sink: out, from: [src, again]}
`,
		want: []stageView{
			{Name: "src", Role: stages.RoleSource, Type: "file", Replicas: 1, Params: map[string]any{"path": "in.csv", "format": "jsonl"}},
			{Name: "again", Role: stages.RoleSource, Type: "file", Replicas: 1, Params: map[string]any{"path": "in.csv", "format": "jsonl"}},
			{Name: "sink", Role: stages.RoleSink, Type: "out", From: []string{"src", "again"}, Replicas: 1, Params: map[string]any{}},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.src, nil)
			if got := views(p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("stages:\n got %+v\nwant %+v", got, tt.want)
			}
			for _, s := range p.Stages {
				if s.Spec == nil || s.Spec.Role() != s.Role || s.Spec.Name != s.Type {
					t.Errorf("stage %q: spec %+v does not match %s %q", s.Name, s.Spec, s.Role, s.Type)
				}
			}
		})
	}
}

func TestParsePipelineFields(t *testing.T) {
	p := mustParse(t, designExample, nil)
	if p.File != "p.yaml" || p.Name != "orders-etl" || p.Description != "CSV orders to JSON lines, big orders only" {
		t.Errorf("got file %q, name %q, description %q", p.File, p.Name, p.Description)
	}
	want := Settings{
		Storage:     "memory",
		Retention:   "limits",
		MaxAge:      90 * time.Minute,
		MaxBuffer:   500,
		DedupWindow: 5 * time.Minute,
		AckWait:     time.Minute,
		MaxDeliver:  3,
		Backoff:     []time.Duration{2 * time.Second, 10 * time.Second},
		Replicas:    3,
		IdleTimeout: DefaultIdleTimeout,
		Fusion:      FusionAuto,
	}
	if !reflect.DeepEqual(p.Settings, want) {
		t.Errorf("settings:\n got %+v\nwant %+v", p.Settings, want)
	}
	if s := p.Stage("clean"); s == nil || s.Pos != (Position{File: "p.yaml", Line: 19, Col: 5}) {
		t.Errorf("stage clean at %+v, want p.yaml:19:5", s)
	}
}

func TestParseDefaultSettings(t *testing.T) {
	for _, settings := range []string{"", "settings:\n", "settings: {}\n", "settings: {backoff: []}\n"} {
		p := mustParse(t, "name: p\n"+settings+"stages: [{name: s, source: gen}]\n", nil)
		want := DefaultSettings()
		if strings.Contains(settings, "backoff") {
			want.Backoff = []time.Duration{}
		}
		if !reflect.DeepEqual(p.Settings, want) {
			t.Errorf("%q: settings %+v, want %+v", settings, p.Settings, want)
		}
	}
}

func TestParseMaxBufferBytes(t *testing.T) {
	for text, want := range map[string]int64{"2097152": 2 << 20, "64MiB": 64 << 20, "1 GB": 1e9, "3GiB": 3 << 30, "1048576B": 1 << 20} {
		p := mustParse(t, "name: p\nsettings: {max_buffer_bytes: "+text+"}\nstages: [{name: s, source: gen}]\n", nil)
		if p.Settings.MaxBufferBytes != want {
			t.Errorf("%s: got %d, want %d", text, p.Settings.MaxBufferBytes, want)
		}
	}
}

func TestParseErrorHandling(t *testing.T) {
	p := mustParse(t, `name: p
settings: {max_deliver: 3, backoff: [2s], max_outage: 10m}
stages:
  - {name: s, source: gen}
  - {name: a, sink: out}
  - {name: b, from: s, sink: out, max_deliver: 7, backoff: [1s, 1m], max_outage: 1h}
  - {name: c, from: s, sink: out, on_error: drop}
  - {name: d, from: s, sink: out, on_error: dead_letter, max_outage: 0s}
`, nil)
	tests := []struct {
		stage      string
		onError    string
		maxDeliver int
		backoff    []time.Duration
		maxOutage  time.Duration
	}{
		{"s", OnErrorDeadLetter, 3, []time.Duration{2 * time.Second}, 10 * time.Minute},
		{"a", OnErrorRetry, 3, []time.Duration{2 * time.Second}, 10 * time.Minute},
		{"b", OnErrorRetry, 7, []time.Duration{time.Second, time.Minute}, time.Hour},
		{"c", OnErrorDrop, 3, []time.Duration{2 * time.Second}, 10 * time.Minute},
		{"d", OnErrorDeadLetter, 3, []time.Duration{2 * time.Second}, 0}, // its own 0: no limit
	}
	for _, tt := range tests {
		s := p.Stage(tt.stage)
		if s.OnError != tt.onError || s.MaxDeliver != tt.maxDeliver || !reflect.DeepEqual(s.Backoff, tt.backoff) || s.MaxOutage != tt.maxOutage {
			t.Errorf("stage %s: on_error %q, max_deliver %d, backoff %v, max_outage %v; want %q, %d, %v, %v", tt.stage, s.OnError, s.MaxDeliver, s.Backoff, s.MaxOutage, tt.onError, tt.maxDeliver, tt.backoff, tt.maxOutage)
		}
	}
	if d := p.Stage("b").RetryDelay(5); d != time.Minute {
		t.Errorf("retry delay after 5 deliveries = %v, want the last backoff, 1m", d)
	}
}

func TestParseKeyed(t *testing.T) {
	p := mustParse(t, `name: p
stages:
  - {name: s, source: gen, event_time: ts, key: user, partitions: 8}
  - {name: a, transform: map, key: 'user + "!"', with: {expr: x}}
  - {name: b, from: [s], sink: out}
`, nil)
	for _, tt := range []struct {
		stage, eventTime, key string
		partitions            int
	}{
		{"s", "ts", "user", 8},
		{"a", "", `user + "!"`, 0},
		{"b", "", "", 0},
	} {
		s := p.Stage(tt.stage)
		if s.EventTime != tt.eventTime || s.Key != tt.key || s.Partitions != tt.partitions {
			t.Errorf("stage %s: event_time %q, key %q, partitions %d; want %q, %q, %d", tt.stage, s.EventTime, s.Key, s.Partitions, tt.eventTime, tt.key, tt.partitions)
		}
	}
}

func TestParseDefaultRegistry(t *testing.T) {
	// Options{} uses stages.Default; a type it does not have is a problem
	// that lists what it has, without relying on which types those are.
	_, err := Parse("p.yaml", []byte("name: p\nstages: [{name: s, source: no-such-type}]\n"), Options{})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `p.yaml:2:28: stage "s": unknown source type "no-such-type"`) {
		t.Errorf("got %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte(designExample), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("name: p\nstages: [{name: s, sink: out}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := Options{Registry: testRegistry(t), LookupEnv: env(nil)}

	p, err := Load(good, opts)
	if err != nil || p.File != good || len(p.Stages) != 4 {
		t.Fatalf("Load(good) = %+v, %v", p, err)
	}

	_, err = Load(bad, opts)
	var ps Problems
	if !errors.As(err, &ps) || !strings.Contains(err.Error(), bad+":2:10: ") {
		t.Errorf("Load(bad) error = %v, want problems at %s:2:10", err, bad)
	}

	missing := filepath.Join(dir, "missing.yaml")
	_, err = Load(missing, opts)
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(missing) error = %v, want a not-exist error naming the path", err)
	}
}

func TestOrder(t *testing.T) {
	p := mustParse(t, `name: order
stages:
  - {name: sink, sink: out, from: [left, right]}
  - {name: right, transform: filter, from: split, with: {expr: "true"}}
  - {name: left, transform: filter, from: split, with: {expr: "true"}}
  - {name: split, transform: map, from: src, with: {expr: "1"}}
  - {name: src, source: gen}
  - {name: other, source: gen}
  - {name: tap, sink: out, from: src}
`, nil)
	var got []string
	done := map[string]bool{}
	for _, s := range p.Order() {
		for _, in := range s.From {
			if !done[in.Stage] {
				t.Errorf("Order() has %s before its input %s", s.Name, in.Stage)
			}
		}
		done[s.Name] = true
		got = append(got, s.Name)
	}
	want := []string{"src", "other", "tap", "split", "right", "left", "sink"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Order() = %v, want %v", got, want)
	}
	var readers []string
	for _, s := range p.Readers("src") {
		readers = append(readers, s.Name)
	}
	if want := []string{"split", "tap"}; !reflect.DeepEqual(readers, want) {
		t.Errorf("Readers(src) = %v, want %v", readers, want)
	}
}
