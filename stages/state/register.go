package state

import (
	"errors"

	"github.com/sluicehq/sluice/stages"
)

// Register adds the types of package state to r.
func Register(r *stages.Registry) error {
	return errors.Join(r.Register(dedupeSpec()), r.Register(rateLimitSpec()))
}
