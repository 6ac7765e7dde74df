package http

import (
	"errors"

	"github.com/sluicehq/sluice/stages"
)

// Register adds the types of package http to r.
func Register(r *stages.Registry) error {
	return errors.Join(r.Register(httpSourceSpec()), r.Register(httpSinkSpec()))
}
