package nats

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// natsServerWith starts a nats-server with JetStream on a random loopback
// port whose max_payload is maxPayload bytes, shut down when the test

// newJS returns a JetStream context on nc.
func newJS(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// createStream creates a stream, failing the test on error.
func createStream(t *testing.T, js jetstream.JetStream, cfg jetstream.StreamConfig) jetstream.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, cfg)
	if err != nil {
		t.Fatalf("create stream %s: %v", cfg.Name, err)
	}
	return st
}

// logBuffer is a slog destination safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

func TestSubjectTemplate(t *testing.T) {
	tests := []struct {
		name     string
		template string
		record   string
		want     string
		parseErr string // part of the error of parsing the template
		err      string // part of the permanent error of rendering
	}{
		{name: "literal", template: "orders.out", record: "not even JSON", want: "orders.out"},
		{name: "field", template: "orders.{region}", record: `{"region":"eu"}`, want: "orders.eu"},
		{name: "two fields in one token", template: "o.{a}-{b}.x", record: `{"a":"p","b":7}`, want: "o.p-7.x"},
		{name: "nested", template: "o.{c.region}", record: `{"c":{"region":"us"}}`, want: "o.us"},
		{name: "integer and bool", template: "{n}.{ok}", record: `{"n":12,"ok":true}`, want: "12.true"},
		{name: "integral float", template: "x.{n}", record: `{"n":3.0}`, want: "x.3"},
		{name: "missing field", template: "o.{region}", record: `{"n":1}`, err: "field region: missing"},
		{name: "dot in value", template: "o.{region}", record: `{"region":"a.b"}`, err: "field region: contains"},
		{name: "wildcard in value", template: "o.{region}", record: `{"region":">"}`, err: "field region: contains"},
		{name: "empty value", template: "o.{region}", record: `{"region":""}`, err: "field region: empty"},
		{name: "object value", template: "o.{region}", record: `{"region":{}}`, err: "JSON object cannot"},
		{name: "null value", template: "o.{region}", record: `{"region":null}`, err: "JSON null cannot"},
		{name: "fraction", template: "o.{n}", record: `{"n":1.5}`, err: "not an integer"},
		{name: "path through a scalar", template: "o.{a.b}", record: `{"a":1}`, err: "a is a JSON number"},
		{name: "not JSON", template: "o.{a}", record: `nope`, err: "invalid JSON"},
		{name: "not an object", template: "o.{a}", record: `[1]`, err: "not an object"},
		{name: "unclosed", template: "o.{a", parseErr: "'{' without '}'"},
		{name: "unopened", template: "o.a}", parseErr: "'}' without '{'"},
		{name: "empty placeholder", template: "o.{}", parseErr: "names no field"},
		{name: "wildcard", template: "o.*", parseErr: "wildcard"},
		{name: "empty token", template: "o..{a}", parseErr: "empty token"},
		{name: "space", template: "o {a}", parseErr: "white space"},
		{name: "empty", template: "", parseErr: "empty subject"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := parseSubjectTemplate(tt.template)
			if tt.parseErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.parseErr) {
					t.Fatalf("parse %q: got %v, want error with %q", tt.template, err, tt.parseErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := tmpl.render(stages.NewMessage([]byte(tt.record)))
			if tt.err != "" {
				if err == nil || !stages.IsPermanent(err) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("render: got %q, %v; want a permanent error with %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("render: got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestSubjectMatching(t *testing.T) {
	tests := []struct {
		a, b             string
		overlap, matches bool // matches: b, a literal, matches filter a
	}{
		{"a.b", "a.b", true, true},
		{"a.*", "a.b", true, true},
		{"a.>", "a.b.c", true, true},
		{"a.>", "a", false, false},
		{"*.b", "a.c", false, false},
		{">", "x.y", true, true},
		{"a.b", "a.b.c", false, false},
		{"sluice.>", "*.p.s", true, false},
		{"sluice.>", "orders.>", false, false},
		{"sluice.>", "*", false, false},
	}
	for _, tt := range tests {
		if got := subjectsOverlap(tt.a, tt.b); got != tt.overlap {
			t.Errorf("subjectsOverlap(%q, %q) = %v", tt.a, tt.b, got)
		}
		if got := subjectsOverlap(tt.b, tt.a); got != tt.overlap {
			t.Errorf("subjectsOverlap(%q, %q) = %v", tt.b, tt.a, got)
		}
		if got := subjectMatches(tt.a, tt.b); got != tt.matches {
			t.Errorf("subjectMatches(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}

func TestNATSHeaders(t *testing.T) {
	h := nats.Header{
		"Nats-Msg-Id":          {"id1"},
		"Nats-Expected-Stream": {"X"},
		"nats-rollup":          {"all"},
		"Sluice-Key":           {"k"},
		"Sluice-Event-Time":    {"2024-01-01T00:00:00Z"},
		"Sluice-Origin":        {"s/r1/1"},
		"Sluice-Error":         {"boom"},
		"traceparent":          {"00-abc"},
		"X-Custom":             {"v"},
	}
	keys := func(h nats.Header) string {
		var out []string
		for k := range h {
			out = append(out, k)
		}
		sort.Strings(out)
		return strings.Join(out, ",")
	}
	if got, want := keys(inboundHeaders(h, true)), "Nats-Msg-Id,Sluice-Event-Time,Sluice-Key,X-Custom,traceparent"; got != want {
		t.Errorf("inbound, keeping the ID: %s, want %s", got, want)
	}
	if got, want := keys(inboundHeaders(h, false)), "Sluice-Event-Time,Sluice-Key,X-Custom,traceparent"; got != want {
		t.Errorf("inbound: %s, want %s", got, want)
	}
	if got, want := keys(outboundHeaders(h)), "Nats-Msg-Id,Sluice-Error,Sluice-Event-Time,Sluice-Key,Sluice-Origin,X-Custom,traceparent"; got != want {
		t.Errorf("outbound: %s, want %s", got, want)
	}
	// Headers with nothing to leave out are passed on as they are.
	clean := nats.Header{"Nats-Msg-Id": {"a"}, "X": {"b"}}
	if out := outboundHeaders(clean); reflect.ValueOf(out).Pointer() != reflect.ValueOf(clean).Pointer() {
		t.Errorf("outbound of clean headers copied them: %v", out)
	}
}

func TestNATSParamChecks(t *testing.T) {
	tests := []struct {
		role  stages.Role
		name  string
		raw   map[string]any
		param string // the parameter the error names; "" for none
	}{
		{stages.RoleSource, "nats", map[string]any{"subject": "in.>"}, ""},
		{stages.RoleSource, "nats", map[string]any{"subject": "in. x"}, "subject"},
		{stages.RoleSource, "nats", map[string]any{"subject": "in.>.x"}, "subject"},
		{stages.RoleSource, "nats", map[string]any{"subject": "sluice.p.s"}, "subject"},
		{stages.RoleSource, "nats", map[string]any{"subject": ">"}, "subject"},
		{stages.RoleSource, "nats", map[string]any{"subject": ">", "url": "nats://127.0.0.1:4222"}, ""},
		{stages.RoleSource, "nats", map[string]any{"subject": "in", "buffer": 0}, "buffer"},
		{stages.RoleSource, "nats", map[string]any{"subject": "in", "queue": "a b"}, "queue"},
		{stages.RoleSource, "nats", map[string]any{"subject": "in", "creds": "/x.creds"}, "creds"},
		{stages.RoleSource, "nats", map[string]any{"subject": "in", "url": "http://h:1"}, "url"},
		{stages.RoleSource, "nats", map[string]any{"subject": "in", "url": "nats://u:secret@h:1,::bad"}, "url"},
		{stages.RoleSource, "jetstream", map[string]any{"stream": "S", "durable": "d"}, ""},
		{stages.RoleSource, "jetstream", map[string]any{"stream": "S.x", "durable": "d"}, "stream"},
		{stages.RoleSource, "jetstream", map[string]any{"stream": "S", "durable": "a b"}, "durable"},
		{stages.RoleSource, "jetstream", map[string]any{"stream": "S", "durable": "d", "filter_subject": "a..b"}, "filter_subject"},
		{stages.RoleSource, "jetstream", map[string]any{"stream": "S", "durable": "d", "max_in_flight": 0}, "max_in_flight"},
		{stages.RoleSource, "jetstream", map[string]any{"stream": "S", "durable": "d", "ack_wait": "10ms"}, "ack_wait"},
		{stages.RoleSource, "jetstream", map[string]any{"stream": "S", "durable": "d", "deliver": "first"}, "deliver"},
		{stages.RoleSink, "nats", map[string]any{"subject": "out.{kind}"}, ""},
		{stages.RoleSink, "nats", map[string]any{"subject": "out.*"}, "subject"},
		{stages.RoleSink, "nats", map[string]any{"subject": "out.{kind"}, "subject"},
		{stages.RoleSink, "jetstream", map[string]any{"stream": "S"}, ""},
		{stages.RoleSink, "jetstream", map[string]any{"stream": "S", "subject": "a.>"}, "subject"},
		{stages.RoleSink, "jetstream", map[string]any{"stream": "S", "url": ""}, "url"},
	}
	for _, tt := range tests {
		spec := stagetest.Lookup(t, tt.role, tt.name)
		_, errs := spec.ParseParams(tt.raw)
		if tt.param == "" {
			if len(errs) > 0 {
				t.Errorf("%s %s %v: %v", tt.role, tt.name, tt.raw, errors.Join(errs...))
			}
			continue
		}
		var pe *stages.ParamError
		if len(errs) != 1 || !errors.As(errs[0], &pe) || pe.Param != tt.param || !errors.Is(errs[0], stages.ErrInvalidParam) {
			t.Errorf("%s %s %v: got %v, want one error on %s", tt.role, tt.name, tt.raw, errs, tt.param)
			continue
		}
		if strings.Contains(errs[0].Error(), "secret") {
			t.Errorf("error shows the password: %v", errs[0])
		}
	}
}

// A URL's user and password are never shown: not in the log, not in an
// error.
func TestNATSURLNotShown(t *testing.T) {
	if got := redactURL("nats://user:secret@h1:4222, tok3n@h2"); strings.Contains(got, "secret") || strings.Contains(got, "tok3n") || !strings.Contains(got, "h1:4222") {
		t.Errorf("redactURL: %q", got)
	}
	var logs logBuffer
	spec := stagetest.Lookup(t, stages.RoleSink, "nats")
	// Nothing listens on port 1: the connection is refused.
	p := stagetest.Parse(t, spec, map[string]any{"subject": "x", "url": "nats://user:secret@127.0.0.1:1"})
	_, err := spec.NewSink(p, stages.Info{Logger: logs.logger()})
	if err == nil {
		t.Fatal("no error connecting to a closed port")
	}
	if strings.Contains(err.Error(), "secret") || strings.Contains(logs.String(), "secret") {
		t.Errorf("password shown: %v\n%s", err, logs.String())
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("error does not say where: %v", err)
	}
}

// Without a runner and without url there is no connection to use.
func TestNATSStagesNeedAConnection(t *testing.T) {
	tests := []struct {
		role stages.Role
		name string
		raw  map[string]any
	}{
		{stages.RoleSource, "nats", map[string]any{"subject": "in"}},
		{stages.RoleSource, "jetstream", map[string]any{"stream": "S", "durable": "d"}},
		{stages.RoleSink, "nats", map[string]any{"subject": "out"}},
		{stages.RoleSink, "jetstream", map[string]any{"stream": "S"}},
	}
	for _, tt := range tests {
		spec := stagetest.Lookup(t, tt.role, tt.name)
		p := stagetest.Parse(t, spec, tt.raw)
		var err error
		if tt.role == stages.RoleSource {
			_, err = spec.NewSource(p, stages.Info{})
		} else {
			_, err = spec.NewSink(p, stages.Info{})
		}
		if err == nil || !strings.Contains(err.Error(), "give url") {
			t.Errorf("%s %s without a connection: %v", tt.role, tt.name, err)
		}
	}
}

// A stage given url owns its connection: closing the stage closes it.
func TestNATSStageOwnsItsConnection(t *testing.T) {
	srv := natstest.Server(t)
	nc := natstest.Connect(t, srv)
	createStream(t, newJS(t, nc), jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}})
	tests := []struct {
		role stages.Role
		name string
		raw  map[string]any
	}{
		{stages.RoleSource, "nats", map[string]any{"subject": "in"}},
		{stages.RoleSource, "jetstream", map[string]any{"stream": "S", "durable": "d"}},
		{stages.RoleSink, "nats", map[string]any{"subject": "out"}},
		{stages.RoleSink, "jetstream", map[string]any{"stream": "S"}},
	}
	for _, tt := range tests {
		t.Run(tt.role.String()+"/"+tt.name, func(t *testing.T) {
			spec := stagetest.Lookup(t, tt.role, tt.name)
			tt.raw["url"] = srv.ClientURL()
			p := stagetest.Parse(t, spec, tt.raw)
			before := srv.NumClients()
			var closer interface{ Close(context.Context) error }
			var err error
			if tt.role == stages.RoleSource {
				closer, err = spec.NewSource(p, stages.Info{Conn: nc})
			} else {
				closer, err = spec.NewSink(p, stages.Info{Conn: nc})
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := srv.NumClients(); n != before+1 {
				t.Fatalf("clients: %d, want %d", n, before+1)
			}
			if err := closer.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			natstest.WaitFor(t, 10*time.Second, "the stage's connection to close", func() bool { return srv.NumClients() == before })
			if nc.IsClosed() {
				t.Fatal("the pipeline's connection was closed")
			}
		})
	}
}
