package pipeline

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// bigPipeline returns a valid pipeline of n stages (n >= 3): a source, n-2
// map transforms and a sink. A chain has each transform read the one
// before it; otherwise every transform reads the source and the sink
// reads them all.
func bigPipeline(n int, chain bool) []byte {
	var b strings.Builder
	b.WriteString("name: big\nstages:\n  - name: src\n    source: gen\n")
	for i := 1; i <= n-2; i++ {
		fmt.Fprintf(&b, "  - name: m%d\n    transform: map\n", i)
		if !chain {
			b.WriteString("    from: src\n")
		}
		fmt.Fprintf(&b, "    with:\n      expr: 'x + %d'\n", i)
	}
	b.WriteString("  - name: out\n    sink: out\n")
	if !chain {
		b.WriteString("    from:\n")
		for i := 1; i <= n-2; i++ {
			fmt.Fprintf(&b, "      - m%d\n", i)
		}
	}
	return []byte(b.String())
}

func BenchmarkParseStages(b *testing.B) {
	reg := testRegistry(b)
	for _, shape := range []struct {
		name  string
		chain bool
	}{{"chain", true}, {"fanout", false}} {
		for _, n := range []int{1_000, 5_000, 20_000, 50_000} {
			data := bigPipeline(n, shape.chain)
			b.Run(fmt.Sprintf("%s/%d", shape.name, n), func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				for range b.N {
					p, err := Parse("big.yaml", data, Options{Registry: reg, LookupEnv: env(nil)})
					if err != nil {
						b.Fatal(err)
					}
					if len(p.Order()) != n {
						b.Fatalf("Order gave %d stages, want %d", len(p.Order()), n)
					}
				}
			})
		}
	}
}

// TestOrderAndCyclesMatchSweeps checks Order and the cycle search against
// the simple quadratic algorithms they replace, on random graphs.
func TestOrderAndCyclesMatchSweeps(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 2000 {
		n := 1 + rng.IntN(9)
		p := &Pipeline{}
		readers := make([][]int, n)
		for i := range n {
			s := &Stage{Name: fmt.Sprintf("s%d", i)}
			for j := range n {
				if j != i && rng.IntN(4) == 0 {
					s.From = append(s.From, Input{Stage: fmt.Sprintf("s%d", j)})
					readers[j] = append(readers[j], i)
				}
			}
			p.Stages = append(p.Stages, s)
		}
		if got, want := stageNames(p.Order()), stageNames(sweepOrder(p)); !slices.Equal(got, want) {
			t.Fatalf("trial %d: Order() = %v, want %v", trial, got, want)
		}
		comp := components(readers)
		parent := slices.Repeat([]int{-1}, n)
		for start := range n {
			got := cycleThrough(readers, comp, parent, start)
			if want := bfsCycle(readers, start); !slices.Equal(got, want) {
				t.Fatalf("trial %d: cycle through %d = %v, want %v", trial, start, got, want)
			}
			if got == nil && slices.Contains(comp[:start], comp[start]) {
				t.Fatalf("trial %d: %d is in a component with others but on no cycle", trial, start)
			}
		}
	}
}

func stageNames(ss []*Stage) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name)
	}
	return out
}

// sweepOrder is Order as sweeps over the stages until none is taken.
func sweepOrder(p *Pipeline) []*Stage {
	done := map[string]bool{}
	var out []*Stage
	for progressed := true; progressed; {
		progressed = false
		for _, s := range p.Stages {
			if !done[s.Name] && !slices.ContainsFunc(s.From, func(in Input) bool { return !done[in.Stage] }) {
				done[s.Name], progressed = true, true
				out = append(out, s)
			}
		}
	}
	return out
}

// bfsCycle is cycleThrough searching the whole graph.
func bfsCycle(readers [][]int, start int) []int {
	parent := slices.Repeat([]int{-1}, len(readers))
	queue := []int{start}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for _, v := range readers[u] {
			if v == start {
				var path []int
				for w := u; w != start; w = parent[w] {
					path = append(path, w)
				}
				path = append(path, start)
				slices.Reverse(path)
				return path
			}
			if parent[v] < 0 && v != start {
				parent[v] = u
				queue = append(queue, v)
			}
		}
	}
	return nil
}

func TestLoadTooLarge(t *testing.T) {
	dir := t.TempDir()
	sized := func(name string, size int64) string {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil { // sparse: nothing is written
			t.Fatal(err)
		}
		return path
	}
	big := sized("big.yaml", MaxFileSize+1)
	_, err := Load(big, Options{Registry: testRegistry(t)})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Load of a file of MaxFileSize+1 bytes: error %v, want one wrapping ErrTooLarge", err)
	}
	want := "sluice: pipeline file too large: " + big + " is 16777217 bytes, more than the limit of 16777216 bytes (16 MiB)"
	if err.Error() != want {
		t.Errorf("error:\n%s\nwant:\n%s", err, want)
	}

	for _, tc := range []struct {
		name, path string
		limit      int64
		wantErr    string // empty for none
	}{
		{"at the limit", sized("ten", 10), 10, ""},
		{"one byte over", sized("eleven", 11), 10, "is 11 bytes, more than the limit of 10 bytes"},
		// A file of /proc says it has no size: it is found too large by
		// reading it.
		{"no size", "/proc/self/status", 10, "/proc/self/status is over 10 bytes, more than the limit of 10 bytes"},
		{"missing", filepath.Join(dir, "missing"), 10, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(tc.path); err != nil && tc.wantErr != "no such file" {
				t.Skip(err)
			}
			data, err := readFile(tc.path, tc.limit)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("readFile: %v", err)
			case tc.wantErr == "" && int64(len(data)) != tc.limit:
				t.Fatalf("readFile gave %d bytes, want %d", len(data), tc.limit)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("readFile error %v, want one containing %q", err, tc.wantErr)
			case tc.wantErr != "no such file" && tc.wantErr != "" && !errors.Is(err, ErrTooLarge):
				t.Fatalf("readFile error %v does not wrap ErrTooLarge", err)
			}
		})
	}
}
