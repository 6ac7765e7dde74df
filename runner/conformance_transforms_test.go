package runner_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/stages"
)

// Conformance cases of the jq, switch, template, parse and delay
// transforms.
func init() {
	conformanceCases = append(conformanceCases,
		conformanceCase{stages.RoleTransform, "jq", func(t *testing.T, e *conformanceEnv) conformanceStage {
			return conformanceStage{
				with: `{query: '.items[] | {v: .}'}`,
				good: []string{`{"items": [1, 2]}`, `{"items": []}`},
				bad:  []string{`{"items": 1}`, `not json`},
				check: func(t *testing.T, got []string) {
					if want := []string{`{"v":1}`, `{"v":2}`}; !slices.Equal(got, want) {
						t.Errorf("got %q, want %q", got, want)
					}
				},
			}
		}},
		conformanceCase{stages.RoleTransform, "switch", func(t *testing.T, e *conformanceEnv) conformanceStage {
			return conformanceStage{
				with: `{cases: [{when: 'n > 1', route: big}], default: small}`,
				good: []string{`{"n": 1}`, `{"n": 2}`},
				bad:  []string{`{"n": "x"}`, `[]`},
				check: func(t *testing.T, got []string) {
					if want := []string{`{"n": 1}`, `{"n": 2}`}; !slices.Equal(got, want) {
						t.Errorf("got %q, want %q", got, want)
					}
				},
			}
		}},
		conformanceCase{stages.RoleTransform, "template", func(t *testing.T, e *conformanceEnv) conformanceStage {
			return conformanceStage{
				with: `{template: '{{.n}} is {{json .}}'}`,
				good: []string{`{"n": 1}`, `{"n": 2.5}`},
				bad:  []string{`{"m": 1}`, `nope`},
				check: func(t *testing.T, got []string) {
					if want := []string{`1 is {"n":1}`, `2.5 is {"n":2.5}`}; !slices.Equal(got, want) {
						t.Errorf("got %q, want %q", got, want)
					}
				},
			}
		}},
		conformanceCase{stages.RoleTransform, "parse", func(t *testing.T, e *conformanceEnv) conformanceStage {
			return conformanceStage{
				with: `{format: csv, field: line, columns: [a, b]}`,
				good: []string{`{"line": "1,2"}`, `{"line": "3,4\n5,6"}`},
				bad:  []string{`{"line": "7"}`, `{"line": 8}`},
				check: func(t *testing.T, got []string) {
					want := []string{`{"a":"1","b":"2"}`, `{"a":"3","b":"4"}`, `{"a":"5","b":"6"}`}
					if !slices.Equal(got, want) {
						t.Errorf("got %q, want %q", got, want)
					}
				},
			}
		}},
		conformanceCase{stages.RoleTransform, "delay", func(t *testing.T, e *conformanceEnv) conformanceStage {
			soon := time.Now().Add(300 * time.Millisecond).UTC().Format(time.RFC3339Nano)
			good := []string{`{"at": "2020-01-01T00:00:00Z"}`, `{"at": "` + soon + `"}`}
			return conformanceStage{
				with: `{until: at, max_delay: 1m}`,
				good: good,
				bad:  []string{`{"at": "soon"}`, `[]`},
				check: func(t *testing.T, got []string) {
					want := slices.Clone(good)
					slices.Sort(want)
					if !slices.Equal(got, want) {
						t.Errorf("got %q, want %q", got, want)
					}
				},
			}
		}},
		conformanceCase{stages.RoleTransform, "window", func(t *testing.T, e *conformanceEnv) conformanceStage {
			// One partition by a constant key, so that a record with a bad
			// user still reaches the window. Event times are those of the
			// feed's stream: the run's end closes every window.
			return conformanceStage{
				inKeys: `key: '"all"', partitions: 1`,
				with:   `{type: tumbling, size: 1h, key: user, aggregate: {n: count, total: 'sum(v)'}}`,
				good:   []string{`{"user": "a", "v": 1}`, `{"user": "b", "v": 2}`, `{"user": "a", "v": 3}`},
				bad:    []string{`{"user": null, "v": 4}`, `{"user": "a", "v": "x"}`},
				check: func(t *testing.T, got []string) {
					var totals []string
					for _, g := range got {
						var r struct {
							Key      string
							N, Total float64
						}
						if err := json.Unmarshal([]byte(g), &r); err != nil {
							t.Fatal(err)
						}
						totals = append(totals, fmt.Sprintf("%s:%v:%v", r.Key, r.N, r.Total))
					}
					slices.Sort(totals)
					// Both users' records are in one hour, unless the run
					// straddled the start of an hour.
					if want := []string{"a:2:4", "b:1:2"}; !slices.Equal(totals, want) && len(totals) < 3 {
						t.Errorf("windows %q, want %q", totals, want)
					}
				},
			}
		}},
	)
}
