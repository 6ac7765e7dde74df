package schema

import (
	"strconv"
	"strings"
)

// Names of the KV buckets sluice keeps its state in.
const (
	StateBucket     = "sluice_state"     // run records and source checkpoints
	PipelinesBucket = "sluice_pipelines" // deployed pipeline specs
	WorkersBucket   = "sluice_workers"   // worker heartbeats
	LeasesBucket    = "sluice_leases"    // which worker runs each source
)

// RunStatusSubject is where a "sluice run" with an embedded server
// answers a request with the status of its pipelines: a JSON status
// report (cluster.StatusReport) of the pipeline the request's body names,
// or of all for an empty body. '_' keeps it apart from any pipeline's
// subjects.
const RunStatusSubject = "sluice._run.status"

// DLQStage is the reserved name that the dead-letter stream takes in the
// place of a stage name; no stage may be called that.
const DLQStage = "dlq"

// StreamName returns the name of the stream that holds the output of stage
// s of pipeline p: SLUICE_P_S, upper case, '-' as '_'.
func StreamName(p, s string) string {
	return "SLUICE_" + token(p) + "_" + token(s)
}

// Subject returns the subject of the default output of stage s of pipeline
// p: sluice.p.s.
func Subject(p, s string) string { return "sluice." + p + "." + s }

// InputSubject returns the subject a consumer filters on to read route
// of stage s ("" for its default output).
func InputSubject(p, s, route string) string {
	if route == "" {
		return Subject(p, s)
	}
	return Subject(p, s) + "." + route
}

// PartitionSubject returns the subject of partition k of the output of
// stage s of pipeline p: sluice.p.s.k.
func PartitionSubject(p, s string, k int) string { return Subject(p, s) + "." + strconv.Itoa(k) }

// Partition returns the partition, of n, of the records of key: the
// 32-bit FNV-1a hash of the key's text modulo n, so that anything can
// compute it.
func Partition(key string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// StreamSubjects returns the subjects of the output stream of stage s:
// its default output and everything below it (routes, partitions).
func StreamSubjects(p, s string) []string {
	subj := Subject(p, s)
	return []string{subj, subj + ".>"}
}

// ReplaySubject returns the subject on the output stream of stage u that
// only stage s reads: where its dead letters are replayed.
func ReplaySubject(p, u, s string) string { return ReplayPrefix(p, u) + s }

// ReplayPrefix returns what every replay subject on the output stream of
// stage u begins with.
func ReplayPrefix(p, u string) string { return Subject(p, u) + "._replay." }

// ConsumerName returns the name of the durable consumer that the workers of
// stage s share on each stream they read.
func ConsumerName(s string) string { return s }

// PartitionConsumerName returns the name of the durable consumer of
// partition k that the workers of stage s share on each partitioned
// stream they read: s_k ('_' is not allowed in stage names).
func PartitionConsumerName(s string, k int) string { return s + "_" + strconv.Itoa(k) }

// DLQStreamName returns the name of the dead-letter stream of pipeline p.
func DLQStreamName(p string) string { return "SLUICE_" + token(p) + "_DLQ" }

// DLQSubject returns the subject of the dead letters of stage s.
func DLQSubject(p, s string) string { return "sluice." + p + "._dlq." + s }

// DLQSubjects returns the subjects of the dead-letter stream of pipeline p.
func DLQSubjects(p string) []string { return []string{"sluice." + p + "._dlq.>"} }

// IntakeStreamName returns the name of the stream of pipeline p that logs
// the inputs its Windowed stages took into their state (see package
// runner); the double underscore keeps it apart from any stage's stream.
func IntakeStreamName(p string) string { return "SLUICE_" + token(p) + "__INTAKE" }

// IntakeSubject returns the subject of the intake log of partition k of
// stage s of pipeline p in run r.
func IntakeSubject(p, s string, r uint64, k int) string {
	return "sluice." + p + "._intake." + s + ".r" + strconv.FormatUint(r, 10) + "." + strconv.Itoa(k)
}

// IntakeSubjects returns the subjects of the intake stream of pipeline p.
func IntakeSubjects(p string) []string { return []string{"sluice." + p + "._intake.>"} }

// OversizedBucket returns the name of the object store bucket that keeps
// the whole payloads of pipeline p's dead letters too large for NATS.
func OversizedBucket(p string) string { return "sluice_oversized_" + strings.ReplaceAll(p, ".", "_") }

func token(name string) string {
	return strings.ReplaceAll(strings.ToUpper(name), "-", "_")
}
