// Package runner is sluice's engine: it runs pipelines on NATS JetStream.
//
// [Run] provisions a pipeline's streams and durable consumers (idempotently,
// so any number of processes can run the same pipeline), builds its stages
// and runs them: one loop per source, `replicas` workers per transform and
// sink stage. Workers pull in batches, process, publish outputs
// asynchronously with a deterministic Nats-Msg-Id, wait for the publish
// acknowledgements and only then acknowledge their inputs. Failed messages
// are retried with the pipeline's backoff and dead-lettered after
// max_deliver attempts, or at once for a permanent error. A run of bounded
// sources ends when every stage has drained.
//
// [Job] is the run lifecycle beneath [Run], which the cluster control plane
// (package cluster) shares: [Open] begins, resumes or joins a run,
// [Job.Start] and [Job.RunSource] run stages, [Job.WaitFinished] is the
// one test of a run's end, [Job.Record] stores how it ended.
//
// The NATS server to run on is the caller's: package server starts one
// inside the process.
package runner
