// Package schema is the one home of what sluice keeps on NATS: the names
// of streams, subjects, consumers and KV buckets, the KV keys, and the
// JSON records stored under them (run records, source checkpoints,
// leases, deployments, worker heartbeats).
//
// They are a public contract between processes of different versions
// and with the data already stored: the tests of this package pin them,
// and changing one strands what deployed pipelines left on NATS.
package schema
