package pipeline

import (
	"fmt"
	"strings"
	"testing"
)

// checkProblems compares problems with want, one "LINE:COL message" each,
// in order; the message of a problem must contain the one wanted.
func checkProblems(t *testing.T, got Problems, want []string) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		pos, msg, _ := strings.Cut(want[i], " ")
		ok = fmt.Sprintf("%d:%d", got[i].Pos.Line, got[i].Pos.Col) == pos && strings.Contains(got[i].Msg, msg)
	}
	if !ok {
		t.Errorf("problems:\n%v\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

func TestProblems(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		// The file.
		{"yaml syntax", "name: p\nstages: [\n", []string{`2:0 invalid YAML: did not find expected node content`}},
		{"tab indents a list item", "name: p\nstages:\n\t- {name: s, source: gen}\n", []string{
			`3:1 invalid YAML: a tab character indents this line; YAML indents with spaces`}},
		{"tab after spaces", "name: p\nstages:\n  - name: s\n  \tsource: gen\n", []string{
			`4:3 invalid YAML: a tab character indents this line`}},
		{"tab under with", "name: p\nstages:\n  - name: s\n    source: gen\n    with:\n\t  count: 1\n", []string{
			`6:1 invalid YAML: a tab character indents this line`}},
		{"tab in a value is fine", "name:\tp\nstages: [{name: s, source: gen}]\npipelin: x\n", []string{`3:1 unknown key "pipelin"`}},
		{"control character", "name: p\nstages: [{name: s, source: gen}]\x1b\n", []string{
			`2:33 invalid YAML: a control character (U+001B) is not allowed`}},
		{"control character in a string", "name: \"p\x07\"\nstages: [{name: s, source: gen}]\n", []string{
			`1:9 invalid YAML: a control character (U+0007) is not allowed`}},
		{"not a tab", "name: p\nstages: @x\n", []string{`2:0 invalid YAML: found character that cannot start any token`}},
		{"empty file", "", []string{`0:0 empty file: want a mapping with name and stages`}},
		{"comments only", "# nothing\n", []string{`0:0 empty file`}},
		{"not a mapping", "- name: p\n", []string{`1:1 want a mapping with name and stages, got a list`}},
		{"two documents", "name: p\nstages: [{name: s, source: gen}]\n---\nname: q\n", []string{`3:1 want one YAML document, found another`}},

		// Top-level keys.
		{"unknown key", "name: p\nstage: []\nstages: [{name: s, source: gen}]\n", []string{
			`2:1 unknown key "stage": did you mean "stages"? (want name, description, settings, plugins, stages)`}},
		{"unknown key, nothing near", "name: p\npipeline: x\nstages: [{name: s, source: gen}]\n", []string{
			`2:1 unknown key "pipeline" (want name, description, settings, plugins, stages)`}},
		{"repeated key", "name: p\nname: q\nstages: [{name: s, source: gen}]\n", []string{
			`2:1 repeated key "name" (first at line 1)`}},
		{"key not a scalar", "name: p\n[a]: 1\nstages: [{name: s, source: gen}]\n", []string{`2:1 want a key, got a list`}},
		{"missing name", "stages: [{name: s, source: gen}]\n", []string{`1:1 missing required key "name"`}},
		{"missing stages", "name: p\n", []string{`1:1 missing required key "stages"`}},
		{"bad name", "name: Orders_ETL\nstages: [{name: s, source: gen}]\n", []string{
			`1:7 name "Orders_ETL" must match ^[a-z][a-z0-9-]*$`}},
		{"long name", "name: " + strings.Repeat("a", 65) + "\nstages: [{name: s, source: gen}]\n", []string{
			`1:7 is longer than 64 characters`}},
		{"name not a string", "name: [p]\nstages: [{name: s, source: gen}]\n", []string{`1:7 name: want a string, got a list`}},
		{"description not a string", "name: p\ndescription: {a: 1}\nstages: [{name: s, source: gen}]\n", []string{
			`2:14 description: want a string, got a mapping`}},
		{"plugins", "name: p\nplugins: [./geo.so]\nstages: [{name: s, source: gen}]\n", []string{
			`2:11 plugins[0]: geo.so: no such file or directory`}},
		{"plugin not a plugin", "name: p\nplugins: [./load.go]\nstages: [{name: s, source: gen}]\n", []string{
			`2:11 plugins[0]: load.go: not a Go plugin: `}},
		{"plugins not a list", "name: p\nplugins: ./geo.so\nstages: [{name: s, source: gen}]\n", []string{
			`2:10 plugins: want a list of paths, got "./geo.so"`}},

		// Settings.
		{"settings not a mapping", "name: p\nsettings: [1]\nstages: [{name: s, source: gen}]\n", []string{
			`2:11 settings: want a mapping, got a list`}},
		{"unknown setting", "name: p\nsettings: {workers: 2}\nstages: [{name: s, source: gen}]\n", []string{
			`2:12 settings: unknown key "workers" (want storage, retention, max_age`}},
		{"settings key, a typo", "name: p\nsettings:\n  retension: 1h\nstages: [{name: s, source: gen}]\n", []string{
			`3:3 settings: unknown key "retension": did you mean "retention"? (want storage, retention`}},
		{"replicas", "name: p\nsettings: {replicas: 7}\nstages: [{name: s, source: gen}]\n", []string{
			`2:22 settings.replicas must be from 1 to 5, the copies JetStream keeps at most (got 7); 3 is usual on a cluster`}},
		{"storage", "name: p\nsettings: {storage: disk}\nstages: [{name: s, source: gen}]\n", []string{
			`2:21 settings.storage must be one of file, memory (got "disk")`}},
		{"retention", "name: p\nsettings: {retention: work}\nstages: [{name: s, source: gen}]\n", []string{
			`2:23 settings.retention must be one of interest, limits (got "work")`}},
		{"bad duration", "name: p\nsettings:\n  ack_wait: abc\nstages: [{name: s, source: gen}]\n", []string{
			`3:13 settings.ack_wait: want a duration such as "30s", got "abc"`}},
		{"duration without unit", "name: p\nsettings:\n  max_age: 30\nstages: [{name: s, source: gen}]\n", []string{
			`3:12 settings.max_age: want a duration such as "30s", got "30"`}},
		{"null duration", "name: p\nsettings:\n  max_age:\nstages: [{name: s, source: gen}]\n", []string{
			`3:11 settings.max_age: want a duration such as "30s", got null`}},
		{"negative max_age", "name: p\nsettings:\n  max_age: -1s\nstages: [{name: s, source: gen}]\n", []string{
			`3:12 settings.max_age must be >= 0s (got -1s)`}},
		{"short ack_wait", "name: p\nsettings:\n  ack_wait: 500ms\nstages: [{name: s, source: gen}]\n", []string{
			`3:13 settings.ack_wait must be >= 1s (got 500ms)`}},
		{"zero dedup_window", "name: p\nsettings:\n  dedup_window: 0s\nstages: [{name: s, source: gen}]\n", []string{
			`3:17 settings.dedup_window must be > 0 (got 0s)`}},
		{"zero max_buffer", "name: p\nsettings:\n  max_buffer: 0\nstages: [{name: s, source: gen}]\n", []string{
			`3:15 settings.max_buffer must be >= 1 (got 0)`}},
		{"unknown on_error", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, sink: out, on_error: ignore}\n", []string{
			`4:36 stage "t": on_error must be one of retry, dead_letter, drop (got "ignore")`}},
		{"source retries", "name: p\nstages:\n  - {name: s, source: gen, on_error: retry}\n", []string{
			`3:38 stage "s": on_error: a source cannot retry a record it could not read: want dead_letter or drop`}},
		{"backoff without retries", "name: p\nstages:\n  - {name: s, source: gen, backoff: [1s]}\n  - {name: t, sink: out, on_error: drop, max_deliver: 2}\n", []string{
			`3:28 stage "s": backoff is for a stage that retries (on_error: retry), not a source`,
			`4:42 stage "t": max_deliver is for a stage that retries (on_error: retry), not a stage with on_error: drop`}},
		{"stage max_deliver", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, sink: out, max_deliver: 0, backoff: 1s}\n", []string{
			`4:39 stage "t": max_deliver must be >= 1 (got 0)`,
			`4:51 stage "t": backoff: want a list of durations such as [1s, 5s], got "1s"`}},
		{"max_outage", "name: p\nsettings:\n  max_outage: -1m\nstages:\n  - {name: s, source: gen, max_outage: 1m}\n  - {name: t, sink: out, max_outage: soon}\n", []string{
			`3:15 settings.max_outage must be >= 0s (got -1m0s)`,
			`5:28 stage "s": max_outage is for a transform or sink, which a destination that is down holds, not a source`,
			`6:38 stage "t": max_outage: want a duration such as "30s", got "soon"`}},
		{"small max_buffer_bytes", "name: p\nsettings:\n  max_buffer_bytes: 1000\nstages: [{name: s, source: gen}]\n", []string{
			`3:21 settings.max_buffer_bytes must be at least 1MiB, the largest message NATS takes by default (got 1000 bytes)`}},
		{"max_buffer_bytes not a size", "name: p\nsettings:\n  max_buffer_bytes: 2 lots\nstages: [{name: s, source: gen}]\n", []string{
			`3:21 settings.max_buffer_bytes: want a size in bytes such as 512MiB or 1GB, got "2 lots"`}},
		{"max_deliver not an int", "name: p\nsettings:\n  max_deliver: 2.5\nstages: [{name: s, source: gen}]\n", []string{
			`3:16 settings.max_deliver: want an integer, got "2.5"`}},
		{"quoted int", "name: p\nsettings:\n  max_deliver: \"3\"\nstages: [{name: s, source: gen}]\n", []string{
			`3:16 settings.max_deliver: want an integer, got "3"`}},
		{"backoff not a list", "name: p\nsettings:\n  backoff: 5s\nstages: [{name: s, source: gen}]\n", []string{
			`3:12 settings.backoff: want a list of durations such as [1s, 5s], got "5s"`}},
		{"backoff item", "name: p\nsettings:\n  backoff: [1s, x, -2s]\nstages: [{name: s, source: gen}]\n", []string{
			`3:17 settings.backoff[1]: want a duration such as "30s", got "x"`}},
		{"negative backoff", "name: p\nsettings:\n  backoff: [1s, -2s]\nstages: [{name: s, source: gen}]\n", []string{
			`3:17 settings.backoff[1] must be >= 0s (got -2s)`}},

		// The list of stages.
		{"stages not a list", "name: p\nstages: {name: s}\n", []string{`2:9 stages: want a list of stages, got a mapping`}},
		{"no stages", "name: p\nstages: []\n", []string{`2:1 stages: want at least one stage`}},
		{"stage not a mapping", "name: p\nstages:\n  - {name: s, source: gen}\n  - s\n", []string{
			`4:5 stage 2: want a mapping with name and source, transform or sink, got "s"`}},
		{"no source", "name: p\nstages:\n  - {name: a, transform: map, from: b, with: {expr: x}}\n  - {name: b, sink: out, from: a}\n", []string{
			`2:1 stages: a pipeline needs at least one source`,
			`3:37 stage "a": from "b": "b" is a sink`}},

		// One stage.
		{"unknown stage key", "name: p\nstages:\n  - name: s\n    source: gen\n    replica: 2\n", []string{
			`5:5 stage "s": unknown key "replica": did you mean "replicas"? (want name, description, source, transform, sink, from, replicas, on_error, max_deliver, backoff, max_outage, event_time, key, partitions, buffer, with)`}},
		{"missing stage name", "name: p\nstages:\n  - source: gen\n", []string{`3:5 stage 1: missing required key "name"`}},
		{"bad stage name", "name: p\nstages:\n  - {name: Read, source: gen}\n", []string{
			`3:12 stage 1: name "Read" must match ^[a-z][a-z0-9-]*$`}},
		{"dotted stage name", "name: p\nstages:\n  - {name: a.b, source: gen}\n", []string{`3:12 stage 1: name "a.b" must match`}},
		{"long stage name", "name: p\nstages:\n  - {name: " + strings.Repeat("s", 65) + ", source: gen}\n", []string{
			`3:12 stage 1: name "sss`}},
		{"reserved stage name", "name: p\nstages:\n  - {name: dlq, source: gen}\n", []string{
			`3:12 stage 1: name "dlq" is reserved for the dead-letter stream`}},
		{"duplicate stage name", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: s, sink: out}\n", []string{
			`4:12 stage "s": duplicate stage name (first at line 3)`}},
		{"no role", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, with: {}}\n", []string{
			`4:5 stage "t": want one of the keys source, transform or sink`}},
		{"two roles", "name: p\nstages:\n  - {name: g, source: gen}\n  - name: s\n    source: gen\n    sink: out\n", []string{
			`6:5 stage "s": both source and sink given: a stage has exactly one role`}},
		{"unknown type", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, transform: mapp}\n", []string{
			`4:26 stage "t": unknown transform type "mapp": did you mean "map"? (want filter, map, route, sw, tally)`}},
		{"unknown type, nothing near", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, transform: jq}\n", []string{
			`4:26 stage "t": unknown transform type "jq" (want filter, map, route, sw, tally)`}},
		{"unknown type, case", "name: p\nstages:\n  - {name: s, source: GEN}\n", []string{
			`3:23 stage "s": unknown source type "GEN": did you mean "gen"? (want file, gen)`}},
		{"type of another role", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, transform: file}\n", []string{
			`4:26 stage "t": "file" is a source and sink type, not a transform`}},
		{"type not a string", "name: p\nstages:\n  - {name: s, source: [gen]}\n", []string{
			`3:23 stage "s": source: want a string, got a list`}},
		{"replicas zero", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, sink: out, replicas: 0}\n", []string{
			`4:36 stage "t": replicas must be >= 1 (got 0)`}},
		{"replicas not an int", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, sink: out, replicas: many}\n", []string{
			`4:36 stage "t": replicas: want an integer, got "many"`}},
		{"source replicas", "name: p\nstages:\n  - {name: s, source: gen, replicas: 2}\n", []string{
			`3:38 stage "s": replicas must be 1 for a source (got 2): sources run as one instance`}},

		// Keys and partitions.
		{"key on a sink", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, sink: out, key: id}\n", []string{
			`4:26 stage "t": key is set on the outputs of a stage, and a sink has none`}},
		{"bad key", "name: p\nstages:\n  - {name: s, source: gen, key: 'id +'}\n", []string{
			`3:33 stage "s": key: expression does not compile: `}},
		{"bad event_time", "name: p\nstages:\n  - {name: s, source: gen, event_time: [ts]}\n", []string{
			`3:40 stage "s": event_time: want a string, got a list`}},
		{"partitions without key", "name: p\nstages:\n  - {name: s, source: gen, partitions: 4}\n", []string{
			`3:28 stage "s": partitions needs key`}},
		{"partitions zero", "name: p\nstages:\n  - {name: s, source: gen, key: id, partitions: 0}\n", []string{
			`3:49 stage "s": partitions must be >= 1 (got 0)`}},
		{"too many partitions", "name: p\nstages:\n  - {name: s, source: gen, key: id, partitions: 5000}\n", []string{
			`3:49 stage "s": partitions: at most 1024, got 5000`}},
		{"partitions on a sink", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, sink: out, partitions: 2}\n", []string{
			`4:26 stage "t": partitions split the output of a stage, and a sink has none`}},
		{"partitions of a routed type", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: r, transform: route, key: id, partitions: 2, with: {routes: [a]}}\n", []string{
			`4:42 stage "r": partitions: transform "route" sends outputs on routes, which are not partitioned`}},
		{"partitioned and not", "name: p\nstages:\n  - {name: s, source: gen, key: id, partitions: 2}\n  - {name: u, source: gen}\n  - {name: t, sink: out, from: [s, u]}\n", []string{
			`5:36 stage "t": from "u": reads partitioned and unpartitioned stages at once ("s" has 2, "u" has 0)`}},
		{"different partitions", "name: p\nstages:\n  - {name: s, source: gen, key: id, partitions: 2}\n  - {name: u, source: gen, key: id, partitions: 3}\n  - {name: t, sink: out, from: [s, u]}\n", []string{
			`5:36 stage "t": from "u": the stages it reads have different partitions ("s" has 2, "u" has 3): give them the same`}},

		// Inputs.
		{"first stage without input", "name: p\nstages:\n  - {name: t, sink: out}\n  - {name: s, source: gen}\n", []string{
			`3:5 stage "t": the first stage must be a source, or name its input with from`}},
		{"source with from", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, source: gen, from: s}\n", []string{
			`4:28 stage "t": a source does not read from other stages: remove from`}},
		{"dangling from", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, sink: out, from: [s, ghost]}\n", []string{
			`4:36 stage "t": from "ghost": no stage is named "ghost"`}},
		{"from a typo", "name: p\nstages:\n  - {name: orders, source: gen}\n  - {name: t, sink: out, from: ordres}\n", []string{
			`4:32 stage "t": from "ordres": no stage is named "ordres": did you mean "orders"?`}},
		{"from a typo of a route", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: split, transform: route, with: {routes: [a]}}\n  - {name: t, sink: out, from: spilt.a}\n", []string{
			`5:32 stage "t": from "spilt.a": no stage is named "spilt": did you mean "split"?`}},
		{"dangling route", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, sink: out, from: ghost.big}\n", []string{
			`4:32 stage "t": from "ghost.big": no stage is named "ghost"`}},
		{"route of a type without routes", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, sink: out, from: s.big}\n", []string{
			`4:32 stage "t": from "s.big": source "gen" has no routes: read from "s"`}},
		{"undeclared route", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: r, transform: route, with: {routes: [a, b]}}\n  - {name: t, sink: out, from: r.c}\n", []string{
			`5:32 stage "t": from "r.c": transform "route" has no route "c": read from "r.a", "r.b"`}},
		{"default output of a routed type", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: r, transform: route, with: {routes: [a]}}\n  - {name: t, sink: out}\n", []string{
			`5:5 stage "t": from "r": transform "route" has only routes: read from "r.a"`}},
		{"from itself", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, transform: filter, from: [s, t], with: {expr: x}}\n", []string{
			`4:44 stage "t": from "t": a stage cannot read from itself`}},
		{"from a sink", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, sink: out}\n  - {name: u, sink: out, from: t}\n", []string{
			`5:32 stage "u": from "t": "t" is a sink, which has no output to read`}},
		{"from a sink route", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, sink: out}\n  - {name: u, sink: out, from: t.r}\n", []string{
			`5:32 stage "u": from "t.r": "t" is a sink`}},
		{"default from a sink", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, sink: out}\n  - {name: u, sink: out}\n", []string{
			`5:5 stage "u": the stage before it, "t", is a sink, which has no output: name its input with from`}},
		{"empty from", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, sink: out, from: []}\n", []string{
			`4:32 stage "t": from: want at least one stage`}},
		{"from not a name", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, sink: out, from: {s: 1}}\n", []string{
			`4:32 stage "t": from: want a stage name or a list of them, got a mapping`}},
		{"from item not a name", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, sink: out, from: [s, [u]]}\n", []string{
			`4:36 stage "t": from: want a string, got a list`}},
		{"bad route", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, sink: out, from: s.a.b}\n", []string{
			`4:32 stage "t": from: "s.a.b": want stage or stage.route`}},
		{"from twice", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, sink: out, from: [s, s]}\n", []string{
			`4:36 stage "t": from: "s" given twice`}},
		{"cycle", `name: p
stages:
  - {name: s, source: gen}
  - {name: a, transform: filter, from: [s, b], with: {expr: x}}
  - {name: b, transform: filter, with: {expr: x}}
`, []string{`4:44 cycle: a -> b -> a`}},
		{"two cycles", `name: p
stages:
  - {name: s, source: gen}
  - {name: a, transform: filter, from: [s, c], with: {expr: x}}
  - {name: b, transform: filter, from: a, with: {expr: x}}
  - {name: c, transform: filter, from: b, with: {expr: x}}
  - {name: d, transform: filter, from: [a, e], with: {expr: x}}
  - {name: e, transform: filter, from: d, with: {expr: x}}
`, []string{`4:44 cycle: a -> b -> c -> a`, `7:44 cycle: d -> e -> d`}},
		{"cycle without a source", `name: p
stages:
  - {name: a, transform: filter, from: b, with: {expr: x}}
  - {name: b, transform: filter, with: {expr: x}}
`, []string{`2:1 stages: a pipeline needs at least one source`, `3:40 cycle: a -> b -> a`}},

		// Parameters.
		{"unknown parameter", "name: p\nstages:\n  - name: s\n    source: gen\n    with:\n      count: 1\n      rate: 2\n", []string{
			`7:7 stage "s": source "gen": unknown parameter "rate" (want count)`}},
		{"unknown parameter, a typo", "name: p\nstages:\n  - {name: s, source: gen, with: {cuont: 1}}\n", []string{
			`3:35 stage "s": source "gen": unknown parameter "cuont": did you mean "count"? (want count)`}},
		{"parameter of a type without any", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, sink: out, with: {x: 1}}\n", []string{
			`4:33 stage "t": sink "out": unknown parameter "x" (it takes none)`}},
		{"missing parameter", "name: p\nstages:\n  - name: s\n    source: file\n    with:\n      format: csv\n", []string{
			`5:5 stage "s": source "file": missing required parameter "path"`}},
		{"missing parameter without with", "name: p\nstages:\n  - name: s\n    source: file\n", []string{
			`3:5 stage "s": source "file": missing required parameter "path"`}},
		{"bad expression", "name: p\nstages:\n  - {name: s, source: gen}\n  - name: clean\n    transform: map\n    with:\n      expr: 'a +'\n", []string{
			`7:13 stage "clean": transform "map": parameter "expr": expression does not compile: `}},
		{"unknown function", "name: p\nstages:\n  - {name: s, source: gen}\n  - name: clean\n    transform: map\n    with:\n      expr: 'nosuchfunc(x) > 1'\n", []string{
			`7:13 stage "clean": transform "map": parameter "expr": expression does not compile: unknown function nosuchfunc (1:1)`}},
		{"unknown function in key", "name: p\nstages:\n  - {name: s, source: gen, key: 'lenn(id)'}\n", []string{
			`3:33 stage "s": key: expression does not compile: unknown function lenn (did you mean len?) (1:1)`}},
		{"bad int parameter", "name: p\nstages:\n  - {name: s, source: gen}\n  - name: clean\n    transform: map\n    with:\n      expr: x\n      n: [1]\n", []string{
			`8:10 stage "clean": transform "map": parameter "n": want an integer, got a list`}},
		{"bad enum parameter", "name: p\nstages:\n  - name: s\n    source: file\n    with: {path: a, format: xml}\n", []string{
			`5:29 stage "s": source "file": parameter "format": must be one of jsonl, csv (got "xml")`}},
		{"bad tagged parameter", "name: p\nstages:\n  - name: s\n    source: gen\n    with: {count: !!int x}\n", []string{
			`5:19 stage "s": source "gen": parameter "count": cannot decode !!str`}},
		{"with not a mapping", "name: p\nstages:\n  - {name: s, source: gen, with: [count]}\n", []string{
			`3:34 stage "s": with: want a mapping, got a list`}},
		{"with of an unknown type", "name: p\nstages:\n  - {name: s, source: nope, with: [count]}\n", []string{
			`3:23 stage "s": unknown source type "nope" (want file, gen)`,
			`3:35 stage "s": with: want a mapping, got a list`}},
		{"check error on a parameter", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, sink: file, with: {path: out/}}\n", []string{
			`4:40 stage "t": sink "file": parameter "path": is a directory`}},
		{"check error", "name: p\nstages:\n  - {name: s, source: gen}\n  - {name: t, sink: file, with: {path: check}}\n", []string{
			`4:27 stage "t": sink "file": the check failed`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProblems(t, problems(t, tt.src, nil), tt.want)
		})
	}
}

func TestProblemsAllAtOnce(t *testing.T) {
	src := `name: Orders
colour: blue
settings:
  ack_wait: soon
  max_buffer: -1
plugins: [geo.so]
stages:
  - name: read
    source: file
    from: x
    replicas: 3
  - name: clean
    transform: map
    with:
      expr: 'a +'
      n: ${N}
      bogus: 1
  - name: write
    sink: file
    transform: map
  - name: dlq
    sink: nope
  - name: clean
    transform: file
  - name: w2
    from: [write, ghost, w2]
    sink: out
`
	ps := problems(t, src, nil)
	checkProblems(t, ps, []string{
		`1:7 name "Orders" must match`,
		`2:1 unknown key "colour"`,
		`4:13 settings.ack_wait: want a duration`,
		`5:15 settings.max_buffer must be >= 1 (got -1)`,
		`6:11 plugins[0]: geo.so: no such file or directory`,
		`8:5 stage "read": source "file": missing required parameter "path"`,
		`10:5 stage "read": a source does not read from other stages`,
		`11:15 stage "read": replicas must be 1 for a source`,
		`15:13 stage "clean": transform "map": parameter "expr": expression does not compile`,
		`16:10 undefined variable "N"`,
		`17:7 stage "clean": transform "map": unknown parameter "bogus"`,
		`20:5 stage "write": both sink and transform given`,
		`21:11 stage 4: name "dlq" is reserved`,
		`22:11 stage 4: unknown sink type "nope"`,
		`23:11 stage "clean": duplicate stage name (first at line 12)`,
		`24:16 stage "clean": "file" is a source and sink type, not a transform`,
		`26:19 stage "w2": from "ghost": no stage is named "ghost"`,
		`26:26 stage "w2": from "w2": a stage cannot read from itself`,
	})
	for _, p := range ps {
		if p.Pos.File != "p.yaml" {
			t.Errorf("problem %v: file %q, want p.yaml", p, p.Pos.File)
		}
	}
}
