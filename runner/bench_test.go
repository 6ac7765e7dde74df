package runner_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages"
)

// BenchmarkPipeline runs b.N generated records of about 200 bytes through
// pipelines on a real nats-server, and reports msgs/s of the whole run
// (provisioning included; use -benchtime=200000x or more so it is small).
//
//	go test ./runner -run XXX -bench Pipeline -benchtime 200000x
func BenchmarkPipeline(b *testing.B) {
	const template = `{"id": seq, "customer": "customer-" + string(seq % 1000), "country": "DE",` +
		` "amount": seq % 500 + 0.5, "items": seq % 7, "note": "a JSON record of about two hundred bytes for the benchmark",` +
		` "placed_at": "2026-11-24T12:00:00Z"}`
	for _, bc := range []struct {
		name, stages string
	}{
		{"1-hop-map", `
  - {name: m1, transform: map, with: {expr: '{"id": id, "customer": customer, "country": country, "amount": amount * 2, "items": items, "note": note, "placed_at": placed_at}'}}`},
		{"3-stage", `
  - {name: m1, transform: map, with: {expr: '{"id": id, "customer": customer, "country": country, "amount": amount * 2, "items": items, "note": note, "placed_at": placed_at}'}}
  - {name: f, transform: filter, with: {expr: 'amount >= 0'}}
  - {name: m2, transform: map, with: {expr: '{"id": id, "customer": upper(customer), "amount": amount, "items": items, "note": note, "placed_at": placed_at}'}}`},
	} {
		for _, storage := range []string{"file", "memory"} {
			b.Run(bc.name+"/"+storage, func(b *testing.B) {
				srv := natstest.Server(b)
				nc := natstest.Connect(b, srv)
				yaml := fmt.Sprintf(`
name: bench
settings: {storage: %s}
stages:
  - {name: gen, source: generate, with: {count: %d, template: '%s'}}%s
  - {name: out, sink: discard}
`, storage, b.N, template, bc.stages)
				p, err := pipeline.Parse("bench.yaml", []byte(yaml), pipeline.Options{Registry: stages.NewRegistry()})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				sum, err := runner.Run(context.Background(), nc, p, runner.Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/sum.Elapsed.Seconds(), "msgs/s")
			})
		}
	}
}
