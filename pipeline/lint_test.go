package pipeline

import (
	"fmt"
	"strings"
	"testing"
)

func TestLint(t *testing.T) {
	reg := builtinRegistry(t)
	tests := []struct {
		name string
		src  string
		want []string // "LINE:COL message", the message a part of the warning's
	}{
		{"nothing to say", `
name: p
stages:
  - name: gen
    source: generate
    key: user
    partitions: 2
  - name: triage
    transform: switch
    with:
      cases: [{when: 'n > 1', route: big}]
      default: small
  - {name: big, from: triage.big, sink: stdout}
  - {name: small, from: triage.small, sink: stdout}
  - name: per-minute
    from: gen
    transform: window
    with: {type: tumbling, size: 1m, key: ' user ', aggregate: {n: count}}
  - name: write
    sink: file
    replicas: 2
    with: {path: 'out/{worker}.jsonl', mode: append}
  - {name: one, from: gen, sink: file, with: {path: one.jsonl}}
  - {name: keep, from: gen, transform: filter, with: {expr: 'len(items) > 1 && $env.count > 2'}}
  - {name: print, sink: stdout}
`, nil},

		// A route nobody reads.
		{"switch case route not read", `
name: p
stages:
  - {name: gen, source: generate}
  - name: triage
    transform: switch
    with:
      cases:
        - {when: 'n > 1', route: big}
        - {when: 'n > 0', route: small}
  - {name: big, from: triage.big, sink: stdout}
`, []string{`10:34 stage "triage": no stage reads route "small" (from: triage.small): the records transform "switch" sends on it are not processed further`}},
		{"switch default not read", `
name: p
stages:
  - {name: gen, source: generate}
  - name: triage
    transform: switch
    with: {cases: [{when: 'n > 1', route: big}], default: rest}
  - {name: big, from: triage.big, sink: stdout}
`, []string{`7:59 stage "triage": no stage reads route "rest"`}},
		{"window late side not read", `
name: p
stages:
  - {name: gen, source: generate, key: user, partitions: 2}
  - name: w
    transform: window
    with: {type: tumbling, size: 1m, key: user, aggregate: {n: count}, late: side}
  - {name: print, sink: stdout}
`, []string{`7:5 stage "w": no stage reads route "late"`}},

		// A window keyed otherwise than its input.
		{"window key differs", `
name: p
stages:
  - {name: gen, source: generate, key: region, partitions: 2}
  - name: w
    transform: window
    with:
      type: tumbling
      size: 1m
      key: user
      aggregate: {n: count}
  - {name: print, sink: stdout}
`, []string{`10:12 stage "w": its key "user" is not "region", the key of stage "gen" that decides the partitions it reads: unless the records of one value of user all have one value of region`}},
		{"window key the same but for spacing", `
name: p
stages:
  - {name: gen, source: generate, key: 'user+"-"+region', partitions: 2}
  - {name: w, transform: window, with: {type: tumbling, size: 1m, key: 'user + "-" + region', aggregate: {n: count}}}
  - {name: print, sink: stdout}
`, nil},

		// A file sink whose replicas share a file.
		{"file sink replicas without worker", `
name: p
stages:
  - {name: gen, source: generate}
  - name: write
    sink: file
    replicas: 3
    with: {path: out.jsonl}
`, []string{`7:15 stage "write": the 3 replicas of a file sink write one file, one batch at a time`}},
		{"file sink one replica", `
name: p
stages:
  - {name: gen, source: generate}
  - {name: write, sink: file, replicas: 1, with: {path: out.jsonl}}
`, nil},
		{"other sink replicas", `
name: p
stages:
  - {name: gen, source: generate}
  - {name: print, sink: stdout, replicas: 3}
`, nil},

		// The duplicate window and ack_wait.
		{"dedup_window shorter than ack_wait", `
name: p
settings: {dedup_window: 30s, ack_wait: 1m}
stages:
  - {name: gen, source: generate}
  - {name: print, sink: stdout}
`, []string{`3:26 settings: dedup_window (30s) is not longer than ack_wait (1m)`}},
		{"ack_wait beyond the default window", `
name: p
settings:
  ack_wait: 2m
stages:
  - {name: gen, source: generate}
  - {name: print, sink: stdout}
`, []string{`4:13 settings: dedup_window (1m) is not longer than ack_wait (2m)`}},
		{"dedup_window longer than ack_wait", `
name: p
settings: {dedup_window: 5m, ack_wait: 2m}
stages:
  - {name: gen, source: generate}
  - {name: print, sink: stdout}
`, nil},

		// Builtins read as fields.
		{"builtin names as fields", `
name: p
stages:
  - name: gen
    source: generate
    with: {template: '{"count": seq, "len": seq}'}
    key: len
  - name: m
    transform: map
    with:
      expr: '{"n": count, "total": sum, "l": len(string(count))}'
  - {name: print, sink: stdout}
`, []string{
			"7:10 stage \"gen\": key: field `len` shadows the builtin len(); it is read as the field",
			"11:13 stage \"m\": with.expr: field `count` shadows the builtin count()",
			"11:13 stage \"m\": with.expr: field `sum` shadows the builtin sum()",
		}},
		{"builtins called", `
name: p
stages:
  - {name: gen, source: generate, event_time: 'now()'}
  - {name: m, transform: filter, with: {expr: 'count(items, # > 1) > 0 && msg.count > 1'}}
  - {name: print, sink: stdout}
`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("p.yaml", []byte(tt.src), Options{Registry: reg, LookupEnv: env(nil)})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := p.Lint()
			ok := len(got) == len(tt.want)
			for i := 0; ok && i < len(tt.want); i++ {
				pos, msg, _ := strings.Cut(tt.want[i], " ")
				ok = got[i].Pos.File == "p.yaml" && fmt.Sprintf("%d:%d", got[i].Pos.Line, got[i].Pos.Col) == pos && strings.Contains(got[i].Msg, msg)
			}
			if !ok {
				t.Errorf("warnings:\n%v\nwant:\n%s", Problems(got), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestLintWithoutFile lints a pipeline that Parse did not make: the
// warnings are there, at the stage or the file.
func TestLintWithoutFile(t *testing.T) {
	p := mustParse(t, "name: p\nsettings: {ack_wait: 5m}\nstages:\n  - {name: gen, source: gen}\n  - {name: out, sink: out}\n", nil)
	p.root = nil
	got := p.Lint()
	if len(got) != 1 || got[0].Pos != (Position{File: "p.yaml"}) || !strings.Contains(got[0].Msg, "dedup_window") {
		t.Errorf("warnings = %v, want one about dedup_window at p.yaml", Problems(got))
	}
}
