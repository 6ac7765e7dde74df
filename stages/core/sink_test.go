package core

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

func TestStdoutSink(t *testing.T) {
	for _, tt := range stagetest.SinkCases() {
		t.Run(tt.Name, func(t *testing.T) {
			var out bytes.Buffer
			sk := stagetest.NewSink(t, "stdout", tt.Raw, stages.Info{Stdout: &out})
			stagetest.RunSinkCase(t, sk, tt)
			// Every Write flushed.
			if got := out.String(); got != tt.Want {
				t.Fatalf("got\n%s\nwant\n%s", got, tt.Want)
			}
			if err := sk.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDiscardSink(t *testing.T) {
	sk := stagetest.NewSink(t, "discard", nil, stages.Info{})
	for _, n := range []int{3, 0, 5} {
		if err := sk.Write(context.Background(), stagetest.Msgs(slices.Repeat([]string{"x"}, n)...)); err != nil {
			t.Fatal(err)
		}
	}
	if got := sk.(*discardSink).n.Load(); got != 8 {
		t.Fatalf("counted %d, want 8", got)
	}
}
