package jq

import (
	"errors"

	"github.com/sluicehq/sluice/stages"
)

// Register adds the types of package jq to r.
func Register(r *stages.Registry) error {
	return errors.Join(r.Register(jqSpec()))
}
