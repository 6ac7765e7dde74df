package nats

import (
	"errors"

	"github.com/sluicehq/sluice/stages"
)

// Register adds the types of package nats to r.
func Register(r *stages.Registry) error {
	return errors.Join(r.Register(natsSourceSpec()), r.Register(jetstreamSourceSpec()),
		r.Register(kvWatchSpec()), r.Register(natsSinkSpec()),
		r.Register(jetstreamSinkSpec()), r.Register(kvSinkSpec()))
}
