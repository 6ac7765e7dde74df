package core

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/stages"
)

const defaultGenerateTemplate = `{"seq": seq}`

func generateSpec() stages.Spec {
	return stages.Spec{
		Name:    "generate",
		Summary: "Generate records from an expression, for tests and benchmarks",
		Doc: `Evaluates template once per record with seq, the 0-based record number, ` +
			`in scope; expr's now() gives the current time. The result (usually an ` +
			`object) is the record. With count the source ends after that many ` +
			`records, otherwise it runs until stopped. With rate, record i is ` +
			`emitted at start + i/rate, so a source that fell behind catches up ` +
			`in a burst; without it records come as fast as the pipeline takes them. ` +
			`A resumed run goes on from the record after the last one checkpointed.

Example:

    - name: gen
      source: generate
      with:
        count: 1000
        rate: 100
        template: '{"id": seq, "at": now(), "even": seq % 2 == 0}'`,
		Params: []stages.Param{
			{Name: "count", Type: stages.TypeInt, Default: 0, Doc: "Number of records to generate; 0 generates until the run is stopped."},
			{Name: "rate", Type: stages.TypeFloat, Default: 0.0, Doc: "Records per second; 0 is as fast as possible."},
			{Name: "template", Type: stages.TypeExpr, Default: defaultGenerateTemplate, Doc: "Expression giving each record; seq is the 0-based record number."},
		},
		Check:     checkGenerate,
		NewSource: newGenerateSource,
	}
}

func checkGenerate(p stages.Params) error {
	if n := p.Int("count"); n < 0 {
		return stages.ParamErrorf("count", "must be >= 0 (got %d)", n)
	}
	if r := p.Float("rate"); r < 0 || math.IsNaN(r) {
		return stages.ParamErrorf("rate", "must be >= 0 (got %g)", r)
	}
	return nil
}

// generateSource evaluates its template once per Read.
type generateSource struct {
	tmpl  *stages.Expr
	count int     // 0: unbounded
	rate  float64 // 0: unpaced
	env   map[string]any
	seq   int
	seq0  int // the first seq of this process: pacing starts there
	start time.Time
	timer *time.Timer
}

var _ stages.Resumable = (*generateSource)(nil)

func newGenerateSource(p stages.Params, _ stages.Info) (stages.Source, error) {
	if err := checkGenerate(p); err != nil {
		return nil, err
	}
	src := defaultGenerateTemplate
	if p.Has("template") {
		src = p.String("template")
	}
	tmpl, err := stages.CompileExpr(src)
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	return &generateSource{
		tmpl:  tmpl,
		count: p.Int("count"),
		rate:  p.Float("rate"),
		env:   map[string]any{"seq": 0},
	}, nil
}

func (g *generateSource) Read(ctx context.Context) (*stages.Message, error) {
	if g.count > 0 && g.seq >= g.count {
		return nil, io.EOF
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if g.rate > 0 {
		if err := g.pace(ctx); err != nil {
			return nil, err
		}
	}
	g.env["seq"] = g.seq
	v, err := g.tmpl.Run(g.env)
	if err != nil {
		return nil, fmt.Errorf("template %q: record %d: %w", g.tmpl, g.seq, err)
	}
	g.seq++
	return stages.NewValueMessage(v), nil
}

// pace waits until record g.seq is due: at start + seq/rate.
func (g *generateSource) pace(ctx context.Context) error {
	now := time.Now()
	if g.start.IsZero() {
		g.start = now
	}
	due := g.start.Add(time.Duration(float64(g.seq-g.seq0) / g.rate * float64(time.Second)))
	wait := due.Sub(now)
	if wait <= 0 {
		return nil
	}
	if g.timer == nil {
		g.timer = time.NewTimer(wait)
	} else {
		g.timer.Reset(wait)
	}
	select {
	case <-g.timer.C:
		return nil
	case <-ctx.Done():
		g.timer.Stop()
		return ctx.Err()
	}
}

// Checkpoint returns the number of records generated.
func (g *generateSource) Checkpoint() ([]byte, error) {
	return strconv.AppendInt(nil, int64(g.seq), 10), nil
}

// Resume continues with the record after those a checkpoint counts.
func (g *generateSource) Resume(checkpoint []byte) error {
	n, err := strconv.Atoi(string(checkpoint))
	if err != nil || n < 0 {
		return fmt.Errorf("checkpoint %q is not a record count", checkpoint)
	}
	g.seq, g.seq0 = n, n
	return nil
}

func (g *generateSource) Close(context.Context) error {
	if g.timer != nil {
		g.timer.Stop()
	}
	return nil
}
