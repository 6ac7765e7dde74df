package runner

import "errors"

// ErrInvalidOption is wrapped by the errors of [Run] for options that do
// not fit the pipeline, such as a stage in Options.Stages that it lacks.
var ErrInvalidOption = errors.New("sluice: invalid runner option")

// ErrStopped is returned by [Job.Start] once the job is closing.
var ErrStopped = errors.New("sluice: job stopped")

// errFastBatchShort is why a fast batch is published again when the server
// acknowledged fewer messages than were sent.
var errFastBatchShort = errors.New("sluice: fast batch acknowledged short")

// errNoAck is why a publish is sent again after publishStall without an
// acknowledgement.
var errNoAck = errors.New("sluice: no acknowledgement from JetStream within " + publishStall.String())

// ErrMaxOutage is wrapped by the error of a run that failed because a
// stage's destination stayed down (errors marked [stages.ErrOutage])
// longer than the stage's max_outage. The records it held were given
// back, not dead-lettered: a later run resumes them.
var ErrMaxOutage = errors.New("sluice: destination down longer than max_outage")
