package stagetest

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/sluicehq/sluice/stages"
)

// TransformCase runs one input through a transform.
type TransformCase struct {
	Name    string
	Raw     map[string]any // the transform's params
	In      string
	Header  stages.Header
	Want    []string // output payloads
	WantErr string   // a permanent error's text, "" for none
}

// RunTransformCases runs each case through a transform of type typ.
func RunTransformCases(t *testing.T, typ string, tests []TransformCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.Name, func(t *testing.T) {
			tr := NewTransform(t, typ, tt.Raw)
			in := stages.NewMessage([]byte(tt.In))
			in.Header = tt.Header
			prior := stages.NewMessage(nil)
			out, err := tr.Process(context.Background(), in, []*stages.Message{prior})
			if tt.WantErr != "" {
				if err == nil || !errors.Is(err, stages.ErrPermanent) || err.Error() != tt.WantErr {
					t.Fatalf("got %v, want permanent %q", err, tt.WantErr)
				}
				if len(out) != 1 || out[0] != prior {
					t.Fatalf("an error must leave out as it was, got %d messages", len(out))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(out) == 0 || out[0] != prior {
				t.Fatal("Process must append to out")
			}
			var got []string
			for _, m := range out[1:] {
				got = append(got, PayloadOf(t, m))
				if !reflect.DeepEqual(m.Header, tt.Header) {
					t.Errorf("output headers %v, want %v", m.Header, tt.Header)
				}
			}
			if !reflect.DeepEqual(got, tt.Want) {
				t.Fatalf("got %q, want %q", got, tt.Want)
			}
		})
	}
}
