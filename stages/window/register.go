package window

import (
	"errors"

	"github.com/sluicehq/sluice/stages"
)

// Register adds the types of package window to r.
func Register(r *stages.Registry) error {
	return errors.Join(r.Register(windowSpec()))
}
