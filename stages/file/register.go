package file

import (
	"errors"

	"github.com/sluicehq/sluice/stages"
)

// Register adds the types of package file to r.
func Register(r *stages.Registry) error {
	return errors.Join(r.Register(fileSourceSpec()), r.Register(fileSinkSpec()))
}
