package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

func TestSchemaCommand(t *testing.T) {
	dir := inEmptyDir(t)
	code, stdout, stderr := sluice(t, "schema")
	if code != ExitOK {
		t.Fatalf("schema: exit %d, stderr:\n%s", code, stderr)
	}
	var doc struct {
		Schema string                     `json:"$schema"`
		Defs   map[string]json.RawMessage `json:"$defs"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("schema output is not JSON: %v", err)
	}
	if doc.Schema != pipeline.SchemaDraft {
		t.Errorf("$schema = %q, want %q", doc.Schema, pipeline.SchemaDraft)
	}
	// Every type of the CLI's registry has its definition.
	for _, spec := range stages.Default.Specs() {
		if def := spec.Role().String() + "." + spec.Name; doc.Defs[def] == nil {
			t.Errorf("no definition %s", def)
		}
	}

	// -o writes the same schema to a file, and nothing to stdout.
	file := filepath.Join(dir, "pipeline.schema.json")
	code, out, stderr := sluice(t, "schema", "-o", file)
	if code != ExitOK || out != "" {
		t.Fatalf("schema -o: exit %d, stdout %q, stderr:\n%s", code, out, stderr)
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, []byte(stdout)) {
		t.Error("schema -o FILE wrote something other than what schema prints")
	}

	if code, _, stderr := sluice(t, "schema", "extra"); code != ExitUsage {
		t.Errorf("schema extra: exit %d, want %d; stderr:\n%s", code, ExitUsage, stderr)
	}
	if code, _, _ := sluice(t, "schema", "-o", filepath.Join(dir, "missing", "s.json")); code != ExitFailure {
		t.Errorf("schema -o into a missing directory: exit %d, want %d", code, ExitFailure)
	}
}
