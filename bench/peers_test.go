package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPeersSmall runs the peers group on a few records: it builds sluice,
// Benthos and the floor (the Go build cache keeps them: about 10 s when
// warm, a minute or two the first time) and fails when their outputs
// differ.
func TestPeersSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds sluice, Benthos and the floor and runs them")
	}
	out := t.TempDir()
	var stdout, stderr strings.Builder
	code := realMain([]string{"-only", "peers", "-n", "2000", "-runs", "1", "-out", out}, &stdout, &stderr)
	if code != 0 {
		if strings.Contains(stderr.String(), errPeersModules.Error()) {
			t.Skipf("the peers module cannot be built here (no module proxy?):\n%s", stderr.String())
		}
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	md := stdout.String()
	for _, want := range []string{"## Whole jobs: sluice, Benthos and the floor", "| " + sluiceVariants[0].Name + " |",
		"| " + peerBenthos + " |", "| " + peerFloor + " |", "keeps 18"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "## Throughput") {
		t.Errorf("report has an empty throughput table:\n%s", md)
	}
}

func TestSameRecords(t *testing.T) {
	dir := t.TempDir()
	read := func(name, body string) []string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := canonicalLines(p)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ref := read("ref", `{"id":1,"amount":200,"customer":"A"}`+"\n"+`{"id":2,"amount":150.5,"customer":"B"}`+"\n")
	for _, tc := range []struct {
		name, body string
		same       bool
	}{
		{"same", `{"id":1,"amount":200,"customer":"A"}` + "\n" + `{"id":2,"amount":150.5,"customer":"B"}` + "\n", true},
		{"other order, keys and number form", `{"customer":"B","amount":1.505e2,"id":2}` + "\n\n" + `{"amount":200.0,"id":1,"customer":"A"}`, true},
		{"one missing", `{"id":1,"amount":200,"customer":"A"}` + "\n", false},
		{"one extra", `{"id":1,"amount":200,"customer":"A"}` + "\n" + `{"id":2,"amount":150.5,"customer":"B"}` + "\n" + `{"id":3,"amount":100,"customer":"C"}` + "\n", false},
		{"one changed", `{"id":1,"amount":200,"customer":"a"}` + "\n" + `{"id":2,"amount":150.5,"customer":"B"}` + "\n", false},
		{"a copy", `{"id":1,"amount":200,"customer":"A"}` + "\n" + `{"id":1,"amount":200,"customer":"A"}` + "\n" + `{"id":2,"amount":150.5,"customer":"B"}` + "\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := sameRecords(ref, read(tc.name, tc.body))
			if tc.same && err != nil {
				t.Errorf("differ: %v", err)
			}
			if !tc.same && !errors.Is(err, errPeersMismatch) {
				t.Errorf("got %v, want %v", err, errPeersMismatch)
			}
		})
	}
}

func TestPeersDataset(t *testing.T) {
	a, err := newPeersDataset(2000)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newPeersDataset(2000)
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for i := range a.Records {
		if string(a.Records[i]) != string(b.Records[i]) {
			t.Fatalf("record %d differs between two data sets", i)
		}
		var o Order
		if err := json.Unmarshal(a.Records[i], &o); err != nil {
			t.Fatal(err)
		}
		if o.Amount*2 >= 100 {
			kept++
		}
	}
	if a.MeanBytes < 195 || a.MeanBytes > 215 {
		t.Errorf("mean record size %.1f bytes, want about 204", a.MeanBytes)
	}
	if kept < 1700 || kept > 1900 {
		t.Errorf("the filter keeps %d of 2000, want about 90%%", kept)
	}
}

func TestSluiceJobSettings(t *testing.T) {
	spec := string(sluiceJob(sluiceVariant{Name: "x", Settings: []string{"storage: memory"}}, "in.jsonl", "out.jsonl"))
	if !strings.Contains(spec, "settings:\n  storage: memory\nstages:") {
		t.Errorf("settings not in the pipeline:\n%s", spec)
	}
	if strings.Contains(string(sluiceJob(sluiceVariant{Name: "y"}, "in", "out")), "settings:") {
		t.Error("a variant without settings has a settings block")
	}
}
