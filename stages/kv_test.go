package stages

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/natstest"
)

// natsInfo starts a NATS server and returns the Info a runner would give
// a stage of pipeline p, stage s on it, with a second connection for the
// test's own reads and writes.
func natsInfo(t *testing.T) (Info, jetstream.JetStream) {
	t.Helper()
	srv := natstest.Server(t)
	info := Info{Pipeline: "p", Stage: "s", Conn: natstest.Connect(t, srv)}
	js, err := jetstream.New(natstest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	return info, js
}

// testCtx returns a context that ends with the test or after 20s.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newInfoTransform(t *testing.T, name string, raw map[string]any, info Info) Transform {
	t.Helper()
	s := lookup(t, RoleTransform, name)
	tr, err := s.NewTransform(parse(t, s, raw), info)
	if err != nil {
		t.Fatalf("transform %s: %v", name, err)
	}
	t.Cleanup(func() { tr.Close(context.Background()) })
	return tr
}

// Every type that keeps state in NATS refuses to build without a
// connection, saying why.
func TestKVStagesNeedConn(t *testing.T) {
	r := NewRegistry()
	tests := []struct {
		role Role
		name string
		raw  map[string]any
	}{
		{RoleTransform, "dedupe", map[string]any{"key": "id"}},
		{RoleTransform, "rate_limit", map[string]any{"rate": 10}},
		{RoleSink, "kv", map[string]any{"bucket": "b", "key": "id"}},
		{RoleSource, "kv_watch", map[string]any{"bucket": "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := r.LookupRole(tt.role, tt.name)
			if err != nil {
				t.Fatal(err)
			}
			p := parse(t, s, tt.raw)
			switch tt.role {
			case RoleSource:
				_, err = s.NewSource(p, Info{})
			case RoleTransform:
				_, err = s.NewTransform(p, Info{})
			case RoleSink:
				_, err = s.NewSink(p, Info{})
			}
			if !errors.Is(err, ErrNoConn) || !strings.HasPrefix(err.Error(), tt.name+": ") {
				t.Fatalf("got %v, want ErrNoConn naming %s", err, tt.name)
			}
		})
	}
}

func TestKVParamChecks(t *testing.T) {
	r := NewRegistry()
	tests := []struct {
		role  Role
		name  string
		raw   map[string]any
		param string // the parameter the error names
	}{
		{RoleTransform, "dedupe", map[string]any{"key": "id", "ttl": "10ms"}, "ttl"},
		{RoleTransform, "dedupe", map[string]any{"key": "id", "bucket": "a.b"}, "bucket"},
		{RoleTransform, "dedupe", map[string]any{"key": "id +"}, "key"},
		{RoleTransform, "rate_limit", map[string]any{"rate": 0}, "rate"},
		{RoleTransform, "rate_limit", map[string]any{"rate": -1}, "rate"},
		{RoleTransform, "rate_limit", map[string]any{"rate": 1, "burst": -1}, "burst"},
		{RoleTransform, "rate_limit", map[string]any{"rate": 0.001, "burst": 1000}, "burst"},
		{RoleSink, "kv", map[string]any{"bucket": "", "key": "id"}, "bucket"},
		{RoleSink, "kv", map[string]any{"bucket": "b c", "key": "id"}, "bucket"},
		{RoleSink, "kv", map[string]any{"bucket": "b", "key": "id", "value": "("}, "value"},
		{RoleSource, "kv_watch", map[string]any{"bucket": "b", "include_history": true, "updates_only": true}, "updates_only"},
		{RoleSource, "kv_watch", map[string]any{"bucket": "b", "keys": []any{"a.>.b"}}, "keys"},
		{RoleSource, "kv_watch", map[string]any{"bucket": "b", "keys": []any{"a..b"}}, "keys"},
		{RoleSource, "kv_watch", map[string]any{"bucket": "b", "keys": []any{"a b"}}, "keys"},
		{RoleSource, "kv_watch", map[string]any{"bucket": "b", "deletes": "keep"}, "deletes"},
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
			var pe *ParamError
			if !errors.As(errs[0], &pe) || pe.Param != tt.param || !errors.Is(errs[0], ErrInvalidParam) {
				t.Fatalf("got %v, want an error on %s", errs[0], tt.param)
			}
		})
	}
}

func TestCheckKVKey(t *testing.T) {
	for _, key := range []string{"a", "a.b", "A-b_c/d=e.9", strings.Repeat("k", maxKVKeyLen)} {
		if err := checkKVKey(key); err != nil {
			t.Errorf("%q: %v", key, err)
		}
	}
	for _, key := range []string{"", ".a", "a.", "a..b", "a b", "a*", "a>", "ü", strings.Repeat("k", maxKVKeyLen+1)} {
		if err := checkKVKey(key); err == nil {
			t.Errorf("%q: accepted", key)
		}
	}
}

// withID returns a message with payload and, unless id is empty, that
// Nats-Msg-Id.
func withID(payload, id string) *Message {
	m := NewMessage([]byte(payload))
	if id != "" {
		m.Header = nats.Header{HeaderMsgID: {id}}
	}
	return m
}

// PurgeState deletes the dedupe buckets and rate_limit keys of one
// pipeline's stages, and nothing of another pipeline's or a bucket the
// user named.
func TestPurgeState(t *testing.T) {
	base, js := natsInfo(t)
	srvConn := base.Conn
	for _, pipe := range []string{"p", "p-x", "q"} {
		info := Info{Pipeline: pipe, Stage: "s", Conn: srvConn}
		newInfoTransform(t, "dedupe", map[string]any{"key": "id"}, info)
		newInfoTransform(t, "rate_limit", map[string]any{"rate": 10}, info)
	}
	newInfoTransform(t, "dedupe", map[string]any{"key": "id", "bucket": "mine"}, Info{Pipeline: "p", Stage: "t", Conn: srvConn})
	ctx := testCtx(t)
	limits, err := js.KeyValue(ctx, rateLimitBucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"p.s", "p-x.s", "q.s"} {
		if _, err := limits.Put(ctx, k, []byte("0")); err != nil {
			t.Fatal(err)
		}
	}

	if err := PurgeState(ctx, js, "p"); err != nil {
		t.Fatal(err)
	}
	var buckets []string
	lister := js.KeyValueStoreNames(ctx)
	for b := range lister.Name() {
		buckets = append(buckets, b)
	}
	slices.Sort(buckets)
	if want := []string{"mine", "sluice_dedupe_p-x_s", "sluice_dedupe_q_s", rateLimitBucket}; !slices.Equal(buckets, want) {
		t.Errorf("buckets left: %q, want %q", buckets, want)
	}
	keys, err := limits.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	if want := []string{"p-x.s", "q.s"}; !slices.Equal(keys, want) {
		t.Errorf("rate_limit keys left: %q, want %q", keys, want)
	}
}
