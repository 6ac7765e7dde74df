package stagetest

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/stages"
)

// Process runs one payload through tr and returns the output payloads.
func Process(t *testing.T, tr stages.Transform, payload string) ([]string, error) {
	t.Helper()
	in := stages.NewMessage([]byte(payload))
	out, err := tr.Process(context.Background(), in, nil)
	var got []string
	for _, m := range out {
		got = append(got, PayloadOf(t, m))
	}
	return got, err
}
