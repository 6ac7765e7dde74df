package examples_test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestExecExample runs the Python enrichment of examples/exec and checks
// every record: enriched, filtered, or dead-lettered with the script's
// reason.
func TestExecExample(t *testing.T) {
	// python3-minimal has no json module: that counts as no Python.
	if err := exec.Command("python3", "-c", "import json").Run(); err != nil {
		t.Skipf("no python3 with its standard library on PATH (%v): the exec example runs a Python script", err)
	}
	out, store, stderr := runExample(t, "examples/exec/pipeline.yaml")

	want := map[float64]map[string]any{}
	for _, o := range []struct {
		id           float64
		customer, cc string
		amount       float64
		name         string
		vat, gross   float64
	}{
		{1, "Ann", "FR", 120, "France", 24, 144},
		{2, "Bob", "DE", 80.5, "Germany", 15.29, 95.8},
		{3, "Chiyo", "JP", 15000, "Japan", 1500, 16500},
		{6, "Eve", "US", 42, "United States", 0, 42},
		{8, "Gus", "DE", 19.99, "Germany", 3.8, 23.79},
		{9, "Zoë", "FR", 250, "France", 50, 300},
		{10, "Hal", "GB", 64, "United Kingdom", 12.8, 76.8},
	} {
		want[o.id] = map[string]any{"id": o.id, "customer": o.customer, "country": o.cc, "amount": o.amount,
			"country_name": o.name, "vat": o.vat, "gross": o.gross}
	}
	got := map[float64]map[string]any{}
	for _, line := range readLines(t, filepath.Join(out, "enriched-orders.jsonl")) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		got[rec["id"].(float64)] = rec
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("enriched orders:\n%v\nwant:\n%v", got, want)
	}

	for stage, counts := range map[string][]string{
		// in, out, filtered, errors, dead letters
		"read":   {"10", "10", "0", "0", "0"},
		"enrich": {"10", "7", "1", "0", "2"},
		"write":  {"7", "7", "0", "0", "0"},
	} {
		if got := summaryRow(t, stderr, stage)[3:8]; !slices.Equal(got, counts) {
			t.Errorf("summary of %s: in/out/filtered/errors/dead = %v, want %v", stage, got, counts)
		}
	}
	wantDead := []string{
		`enrich: exec: command "python3" rejected the record: "rejected order: KeyError 'XX'"`,
		`enrich: exec: command "python3" rejected the record: "rejected order: ValueError could not convert string to float: 'n/a'"`,
	}
	if dead := deadLetters(t, store, "orders-enrich"); !slices.Equal(dead, wantDead) {
		t.Errorf("dead letters:\n%s\nwant:\n%s", strings.Join(dead, "\n"), strings.Join(wantDead, "\n"))
	}
	// What the script wrote to stderr is in sluice's log.
	if !strings.Contains(stderr, `"line":"rejected order: KeyError 'XX'"`) {
		t.Errorf("the script's stderr is not in the log:\n%s", stderr)
	}
}
