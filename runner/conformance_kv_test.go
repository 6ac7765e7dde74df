package runner_test

import (
	"context"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/stages"
)

// Conformance cases of the types that keep state in NATS: the kv_watch
// source, the dedupe and rate_limit transforms and the kv sink.
func init() {
	conformanceCases = append(conformanceCases,
		conformanceCase{stages.RoleSource, "kv_watch", func(t *testing.T, e *conformanceEnv) conformanceStage {
			js, err := jetstream.New(e.nc)
			if err != nil {
				t.Fatal(err)
			}
			kv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "watched", History: 5})
			if err != nil {
				t.Fatal(err)
			}
			return conformanceStage{
				// With history, every change is read whether the
				// watch starts before or after they are made.
				with: `{bucket: watched, include_history: true}`,
				// Unbounded: the changes are made once the run has
				// started. A value that is neither JSON nor text is
				// the one thing it cannot make a record of.
				feed: func(ctx context.Context, t *testing.T) error {
					for _, kv1 := range [][2]string{{"a", `{"n": 1}`}, {"b", "text"}, {"bin", "\xff"}, {"a", "2"}} {
						if _, err := kv.Put(ctx, kv1[0], []byte(kv1[1])); err != nil {
							return err
						}
					}
					return nil
				},
				want:    3,
				wantBad: 1,
				check: func(t *testing.T, got []string) {
					want := []string{
						`{"key":"a","op":"put","revision":1,"value":{"n":1}}`,
						`{"key":"a","op":"put","revision":4,"value":2}`,
						`{"key":"b","op":"put","revision":2,"value":"text"}`,
					}
					if !slices.Equal(got, want) {
						t.Errorf("got %q, want %q", got, want)
					}
				},
			}
		}},
		conformanceCase{stages.RoleTransform, "dedupe", func(t *testing.T, e *conformanceEnv) conformanceStage {
			return conformanceStage{
				with: `{key: id}`,
				good: []string{`{"id": 1, "n": 1}`, `{"id": 1, "n": 2}`, `{"id": 2}`},
				// A record without the key, and one that is no record.
				bad: []string{`{"other": 1}`, `not json`},
				check: func(t *testing.T, got []string) {
					if want := []string{`{"id": 1, "n": 1}`, `{"id": 2}`}; !slices.Equal(got, want) {
						t.Errorf("got %q, want %q", got, want)
					}
				},
			}
		}},
		conformanceCase{stages.RoleTransform, "rate_limit", func(t *testing.T, e *conformanceEnv) conformanceStage {
			// rate_limit never reads its records: nothing is bad input.
			return conformanceStage{
				with: `{rate: 1000}`,
				good: []string{`{"n": 1}`, `{"n": 2}`, `not json`},
				check: func(t *testing.T, got []string) {
					if len(got) != 3 {
						t.Errorf("got %q, want the 3 records", got)
					}
				},
			}
		}},
		conformanceCase{stages.RoleSink, "kv", func(t *testing.T, e *conformanceEnv) conformanceStage {
			return conformanceStage{
				with: `{bucket: out, key: id}`,
				good: []string{`{"id": "a", "n": 1}`, `{"id": 7}`},
				// An invalid key, no key, and no record.
				bad: []string{`{"id": "a b"}`, `{"n": 1}`, `nope`},
				check: func(t *testing.T, _ []string) {
					js, err := jetstream.New(e.nc)
					if err != nil {
						t.Fatal(err)
					}
					kv, err := js.KeyValue(context.Background(), "out")
					if err != nil {
						t.Fatal(err)
					}
					for key, want := range map[string]string{"a": `{"id": "a", "n": 1}`, "7": `{"id": 7}`} {
						if en, err := kv.Get(context.Background(), key); err != nil || string(en.Value()) != want {
							t.Errorf("key %s: %v", key, err)
						}
					}
					keys, err := kv.Keys(context.Background())
					if err != nil || len(keys) != 2 {
						t.Errorf("keys %q, %v; want 2", keys, err)
					}
				},
			}
		}},
	)
}
