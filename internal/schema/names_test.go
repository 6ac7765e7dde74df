package schema

import (
	"reflect"
	"testing"
)

// TestNames pins the names on NATS: changing one strands the streams and
// consumers of every deployed pipeline.
func TestNames(t *testing.T) {
	const p, s = "orders-etl", "clean"
	for _, tt := range []struct{ got, want any }{
		{StreamName(p, s), "SLUICE_ORDERS_ETL_CLEAN"},
		{Subject(p, s), "sluice.orders-etl.clean"},
		{StreamSubjects(p, s), []string{"sluice.orders-etl.clean", "sluice.orders-etl.clean.>"}},
		{InputSubject(p, s, ""), "sluice.orders-etl.clean"},
		{InputSubject(p, s, "big"), "sluice.orders-etl.clean.big"},
		{ConsumerName(s), "clean"},
		{PartitionSubject(p, s, 3), "sluice.orders-etl.clean.3"},
		{PartitionConsumerName(s, 3), "clean_3"},
		// FNV-1a, 32 bits: "a" hashes to 0xe40c292c.
		{Partition("a", 1000), int(0xe40c292c % 1000)},
		{Partition("", 7), int(2166136261 % 7)},
		{ReplaySubject(p, s, "big"), "sluice.orders-etl.clean._replay.big"},
		{ReplayPrefix(p, s), "sluice.orders-etl.clean._replay."},
		{DLQStreamName(p), "SLUICE_ORDERS_ETL_DLQ"},
		{IntakeStreamName(p), "SLUICE_ORDERS_ETL__INTAKE"},
		{IntakeSubject(p, s, 3, 7), "sluice.orders-etl._intake.clean.r3.7"},
		{IntakeSubjects(p)[0], "sluice.orders-etl._intake.>"},
		{DLQSubject(p, s), "sluice.orders-etl._dlq.clean"},
		{DLQSubjects(p), []string{"sluice.orders-etl._dlq.>"}},
		{RunStatusSubject, "sluice._run.status"},
	} {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
