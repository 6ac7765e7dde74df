package stages

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// paramCase is a set of parameters that validation must reject with one
// error on param whose text contains msg.
type paramCase struct {
	raw   map[string]any
	param string
	msg   string
}

func checkParamErrors(t *testing.T, typ string, tests []paramCase) {
	t.Helper()
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			_, errs := lookup(t, RoleTransform, typ).ParseParams(tt.raw)
			var pe *ParamError
			if len(errs) != 1 || !errors.As(errs[0], &pe) || pe.Param != tt.param || !errors.Is(errs[0], ErrInvalidParam) || !strings.Contains(errs[0].Error(), tt.msg) {
				t.Fatalf("params %v: got %v, want one error on %s containing %q", tt.raw, errs, tt.param, tt.msg)
			}
		})
	}
}
