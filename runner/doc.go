// Package runner runs sluice pipelines on NATS JetStream.
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
// [StartEmbedded] starts a nats-server with JetStream inside the process
// for running without any infrastructure.
package runner
