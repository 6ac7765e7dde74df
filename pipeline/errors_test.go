package pipeline

import (
	"errors"
	"fmt"
	"testing"
)

func TestPositionString(t *testing.T) {
	for _, tt := range []struct {
		pos  Position
		want string
	}{
		{Position{File: "p.yaml", Line: 3, Col: 7}, "p.yaml:3:7"},
		{Position{File: "p.yaml", Line: 3}, "p.yaml:3"},
		{Position{File: "p.yaml"}, "p.yaml"},
	} {
		if got := tt.pos.String(); got != tt.want {
			t.Errorf("%+v: got %q, want %q", tt.pos, got, tt.want)
		}
	}
}

func TestProblemsError(t *testing.T) {
	ps := Problems{
		{Pos: Position{File: "p.yaml", Line: 2, Col: 1}, Msg: `unknown key "x"`},
		{Pos: Position{File: "p.yaml"}, Msg: "empty file"},
	}
	if want := "p.yaml:2:1: unknown key \"x\"\np.yaml: empty file"; ps.Error() != want {
		t.Errorf("Error() = %q, want %q", ps.Error(), want)
	}
	err := fmt.Errorf("validate: %w", ps)
	if !errors.Is(err, ErrInvalid) {
		t.Error("errors.Is(wrapped Problems, ErrInvalid) = false")
	}
	var got Problems
	if !errors.As(err, &got) || len(got) != 2 {
		t.Errorf("errors.As gave %v", got)
	}
}
