// Package cluster is sluice's control plane on a NATS cluster: [Deploy]
// and [Undeploy] store and remove pipelines in the sluice_pipelines
// bucket, [RunWorker] is the worker agent that runs every deployed
// pipeline (owning each source through a lease, so that exactly one worker
// reads it and another takes it over when that one dies), and [Status]
// reports the workers and the deployed pipelines.
//
// The engine itself is the runner package: a worker runs each deployed
// pipeline as a [runner.Job], the same run lifecycle as `sluice run`.
package cluster
