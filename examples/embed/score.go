package main

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/sluicehq/sluice/stages"
)

// scoreSpec declares the "score" transform: what the YAML names, its
// parameters (validated before the run, documented by `sluice stages`)
// and how to build one instance per worker.
func scoreSpec() stages.Spec {
	return stages.Spec{
		Name: "score",
		// It keeps nothing from one record to the next: sluice may run it
		// fused with the stages around it, with no stream between them.
		Stateless: true,
		Summary:   "Adds a fraud risk between 0 and 1 to each order",
		Doc: "risk grows with amount (half of it above large_amount) and is raised by 0.5 " +
			"for an order from a risky country. An order without a numeric amount is a dead letter.",
		Params: []stages.Param{
			{Name: "large_amount", Type: stages.TypeFloat, Default: 200.0, Doc: "An amount this large counts for a risk of 0.5."},
			{Name: "risky_countries", Type: stages.TypeStringList, Default: []string{}, Doc: "Country codes that add 0.5."},
		},
		Check: func(p stages.Params) error {
			if p.Float("large_amount") <= 0 {
				return &stages.ParamError{Param: "large_amount", Err: fmt.Errorf("%w: must be > 0", stages.ErrInvalidParam)}
			}
			return nil
		},
		NewTransform: func(p stages.Params, _ stages.Info) (stages.Transform, error) {
			return &score{large: p.Float("large_amount"), risky: p.Strings("risky_countries")}, nil
		},
	}
}

type score struct {
	large float64
	risky []string
}

// Process adds the risk field. A bad record is a permanent error: the
// runner sends it to the dead-letter stream with the reason at once.
func (s *score) Process(_ context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	rec, err := in.Record()
	if err != nil {
		return out, err
	}
	var amount float64
	switch a := rec["amount"].(type) {
	case int64:
		amount = float64(a)
	case float64:
		amount = a
	default:
		return out, stages.Permanent(fmt.Errorf("amount: want a number, got %v", rec["amount"]))
	}
	risk := math.Min(amount/s.large, 1) / 2
	if country, _ := rec["country"].(string); slices.Contains(s.risky, country) {
		risk += 0.5
	}
	rec["risk"] = math.Round(risk*100) / 100
	in.SetValue(rec)
	return append(out, in), nil
}

func (s *score) Close(context.Context) error { return nil }
