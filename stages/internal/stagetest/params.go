package stagetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/stages"
)

// ParamCase is a set of parameters that validation must reject with one
// error on param whose text contains msg.
type ParamCase struct {
	Raw   map[string]any
	Param string
	Msg   string
}

// CheckParamErrors checks that validation rejects each case of the
// transform type typ as the case says.
func CheckParamErrors(t *testing.T, typ string, tests []ParamCase) {
	t.Helper()
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			_, errs := Lookup(t, stages.RoleTransform, typ).ParseParams(tt.Raw)
			var pe *stages.ParamError
			if len(errs) != 1 || !errors.As(errs[0], &pe) || pe.Param != tt.Param || !errors.Is(errs[0], stages.ErrInvalidParam) || !strings.Contains(errs[0].Error(), tt.Msg) {
				t.Fatalf("params %v: got %v, want one error on %s containing %q", tt.Raw, errs, tt.Param, tt.Msg)
			}
		})
	}
}
