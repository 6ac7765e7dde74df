package runner_test

import (
	"context"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/runner"
)

const kvWatchYAML = `
name: kv
stages:
  - name: watch
    source: kv_watch
    with: {bucket: src}
  - name: once
    transform: dedupe
    with: {key: key}
  - name: out
    sink: collect
`

// An interrupted run of a kv_watch source resumes after the last change
// it checkpointed, and a dedupe stage remembers the keys it let through
// across the runs: every change is read once, and a key passes once.
func TestKVWatchAndDedupeResume(t *testing.T) {
	e := newEnv(t)
	kv, err := e.js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "src", History: 5})
	if err != nil {
		t.Fatal(err)
	}
	put := func(key, value string) {
		if _, err := kv.Put(context.Background(), key, []byte(value)); err != nil {
			t.Fatal(err)
		}
	}
	put("a", "1")
	put("b", "2")
	first := e.interrupt(t, kvWatchYAML, "out", 2, runner.Options{})
	if !first.Interrupted || first.Run != 1 {
		t.Fatalf("first summary = %+v, want run 1 interrupted", first)
	}

	put("a", "3") // a key seen before: filtered
	put("c", "4")
	second := e.interrupt(t, kvWatchYAML, "out", 3, runner.Options{})
	if !second.Resumed || second.Run != 1 {
		t.Fatalf("second summary = %+v, want run 1 resumed", second)
	}
	// The checkpoint may be one change behind: the source loop takes one
	// for a record only when the publisher has caught up (or every 256),
	// and b may have been read while a still waited to be published. Then
	// b is read again, and filtered.
	// The counts are the whole run's: the checkpoint's, then what the
	// resumed source read (b again if the checkpoint was behind).
	if read := stageSum(t, second, "watch").In; read != 4 {
		t.Errorf("over the whole run the source read %d changes, want 4", read)
	}
	if st := stageSum(t, second, "once"); st.Out != 3 || st.Filtered != st.In-3 {
		t.Errorf("dedupe: %+v over the whole run, want a, b and c out and the rest filtered", st)
	}
	want := []string{
		`{"key":"a","op":"put","revision":1,"value":1}`,
		`{"key":"b","op":"put","revision":2,"value":2}`,
		`{"key":"c","op":"put","revision":4,"value":4}`,
	}
	if got := e.c.sorted("out"); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}
