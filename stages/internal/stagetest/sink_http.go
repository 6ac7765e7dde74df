package stagetest

import (
	"github.com/sluicehq/sluice/stages"
)

// Outcome names an error's class: "ok", "permanent" or "retry".
func Outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case stages.IsPermanent(err):
		return "permanent"
	}
	return "retry"
}
