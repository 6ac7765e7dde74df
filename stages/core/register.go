package core

import (
	"errors"

	"github.com/sluicehq/sluice/stages"
)

// Register adds the types of package core to r.
func Register(r *stages.Registry) error {
	return errors.Join(r.Register(generateSpec()), r.Register(stdinSpec()), r.Register(mapSpec()),
		r.Register(filterSpec()), r.Register(splitSpec()), r.Register(switchSpec()),
		r.Register(templateSpec()), r.Register(parseSpec()), r.Register(delaySpec()),
		r.Register(stdoutSpec()), r.Register(discardSpec()))
}
