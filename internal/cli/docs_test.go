package cli

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestStageReferenceIsCurrent checks that docs/stages.md is what
// `sluice stages --markdown` writes today.
func TestStageReferenceIsCurrent(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main([]string{"stages", "--markdown"}, strings.NewReader(""), &out, &errOut); code != ExitOK {
		t.Fatalf("stages --markdown: exit %d: %s", code, errOut.String())
	}
	doc, err := os.ReadFile("../../docs/stages.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(doc, out.Bytes()) {
		t.Fatal("docs/stages.md is out of date: run `go run ./cmd/sluice stages --markdown > docs/stages.md`")
	}
}
