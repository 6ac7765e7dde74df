package pipeline

import (
	"cmp"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/stages"
)

// Defaults of [Settings], as DESIGN.md gives them.
const (
	DefaultStorage     = "file"
	DefaultRetention   = "interest"
	DefaultMaxAge      = 24 * time.Hour
	DefaultMaxBuffer   = 100_000
	DefaultDedupWindow = time.Minute
	DefaultAckWait     = 30 * time.Second
	DefaultMaxDeliver  = 5
	DefaultReplicas    = 1
	DefaultIdleTimeout = 30 * time.Second
)

// DefaultBackoff is the default delay before each retry of a failed message.
var DefaultBackoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}

// Settings are the pipeline-wide options of the `settings:` key.
type Settings struct {
	Storage   string        // "file" or "memory": storage of the stage streams
	Retention string        // "interest" or "limits"
	MaxAge    time.Duration // message age limit of the stage streams
	MaxBuffer int           // messages buffered per stage stream before upstream waits
	// MaxBufferBytes bounds the bytes of each stage stream too; 0 is no
	// bound but MaxBuffer.
	MaxBufferBytes int64
	DedupWindow    time.Duration   // JetStream duplicate window of the stage streams
	AckWait        time.Duration   // time a worker has before a message is redelivered
	MaxDeliver     int             // attempts before a message goes to the dead-letter stream
	Backoff        []time.Duration // delay before retry n is Backoff[min(n, len-1)]
	// MaxOutage is how long a stage may be held by a destination that is
	// down (an error marked stages.ErrOutage) before the run fails; 0
	// holds it until the destination is back.
	MaxOutage time.Duration
	// Replicas is how many servers of a JetStream cluster keep a copy of
	// each stage stream, the dead-letter stream and the state bucket.
	Replicas int
	// MaxOutOfOrderness is how far behind the latest event time a source
	// has seen a record may be and still not be late: a source's
	// watermark is the latest event time minus it.
	MaxOutOfOrderness time.Duration
	// IdleTimeout is how long a source or worker that sends nothing may
	// hold back the watermark of the stages after it: past it, it is
	// idle, and left out until it sends again.
	IdleTimeout time.Duration
	// Fusion is FusionAuto (the default), where adjacent stages that need
	// no stream between them run fused (see [Pipeline.Chains]), or
	// FusionOff, where every stage boundary is a stream.
	Fusion string
}

// The values of Settings.Fusion.
const (
	FusionAuto = "auto"
	FusionOff  = "off"
)

// The values of a stage's buffer key.
const (
	BufferAuto    = "auto"    // a stream before the stage only where one is needed
	BufferDurable = "durable" // always a stream before the stage
)

// DefaultSettings returns the settings of a pipeline that sets none.
func DefaultSettings() Settings {
	return Settings{
		Storage:     DefaultStorage,
		Retention:   DefaultRetention,
		MaxAge:      DefaultMaxAge,
		MaxBuffer:   DefaultMaxBuffer,
		DedupWindow: DefaultDedupWindow,
		AckWait:     DefaultAckWait,
		MaxDeliver:  DefaultMaxDeliver,
		Replicas:    DefaultReplicas,
		IdleTimeout: DefaultIdleTimeout,
		Fusion:      FusionAuto,
		Backoff:     append([]time.Duration(nil), DefaultBackoff...),
	}
}

// RetryDelay returns the delay before the next attempt of a message that
// has failed deliveries times (deliveries >= 1).
func (s Settings) RetryDelay(deliveries int) time.Duration {
	return retryDelay(s.Backoff, deliveries)
}

func retryDelay(backoff []time.Duration, deliveries int) time.Duration {
	if len(backoff) == 0 {
		return 0
	}
	i := min(max(deliveries-1, 0), len(backoff)-1)
	return backoff[i]
}

// What a stage does with a message it failed to process, as on_error
// gives it.
const (
	// OnErrorRetry retries with the backoff until max_deliver attempts,
	// then dead-letters; a permanent error dead-letters at once.
	OnErrorRetry = "retry"
	// OnErrorDeadLetter dead-letters at the first error.
	OnErrorDeadLetter = "dead_letter"
	// OnErrorDrop acknowledges the message at the first error and counts
	// it as dropped.
	OnErrorDrop = "drop"
)

// Position is a place in a pipeline file. Line and Col are 1-based; zero
// means unknown.
type Position struct {
	File string
	Line int
	Col  int
}

// Input names what a stage reads: the default output of a stage, or one of
// its routes ("stage.route" in YAML).
type Input struct {
	Stage string
	Route string // empty for the default output
}

// String returns the input as written in YAML.
func (in Input) String() string {
	if in.Route == "" {
		return in.Stage
	}
	return in.Stage + "." + in.Route
}

// Stage is one validated stage of a pipeline.
type Stage struct {
	Name        string
	Description string
	Role        stages.Role
	Type        string       // the type name, such as "map"
	Spec        *stages.Spec // the type's spec from the registry
	From        []Input      // empty for a source
	Replicas    int          // workers per runner process
	Params      stages.Params
	Pos         Position // where the stage's mapping starts

	// What to do with a message the stage fails on: OnErrorRetry (the
	// default; a source, which cannot retry, dead-letters),
	// OnErrorDeadLetter or OnErrorDrop. MaxDeliver and Backoff are the
	// pipeline's settings unless the stage sets its own.
	OnError    string
	MaxDeliver int
	Backoff    []time.Duration
	// MaxOutage is how long the stage may be held by a destination that
	// is down before the run fails, the pipeline's setting unless the
	// stage sets its own; 0 holds it until the destination is back.
	MaxOutage    time.Duration
	maxOutageSet bool // the stage sets max_outage, even to 0

	// EventTime, if set, is the expression whose value is the event time
	// of each output of the stage (a time, RFC 3339 text, or Unix seconds
	// or milliseconds); the runner puts it in the Sluice-Event-Time header.
	// Without it an output keeps its input's event time, and a source's
	// record gets the time it was read.
	EventTime string
	// Key, if set, is the expression whose value is the key of each
	// output, put in the Sluice-Key header.
	Key string
	// Partitions, if above 0, splits the stage's output by key into that
	// many partitions, sluice.p.s.0 to sluice.p.s.N-1; the workers of a
	// stage that reads it each own some partitions and process each in
	// order.
	Partitions int
	// InputPartitions is the partitions of the stages it reads (validation
	// makes them all the same), 0 if they are not partitioned.
	InputPartitions int
	// Durable, set by "buffer: durable", keeps a stream before the stage
	// even where it could run fused with the stage it reads.
	Durable bool
}

// RetryDelay returns the delay before the next attempt of a message that
// has failed deliveries times (deliveries >= 1).
func (s *Stage) RetryDelay(deliveries int) time.Duration {
	return retryDelay(s.Backoff, deliveries)
}

// Pipeline is a decoded and validated pipeline file.
type Pipeline struct {
	File        string
	Name        string
	Description string
	Settings    Settings
	Plugins     []string
	Stages      []*Stage // in file order

	// byName is the index in Stages of each stage, as Parse made them; a
	// lookup checks it, since a caller may change Stages.
	byName map[string]int
	// root is the file's top-level mapping, interpolated, which Parse
	// decoded: Lint points at its keys and values.
	root *yaml.Node
}

// Stage returns the stage of that name, or nil. It takes constant time on
// a pipeline that [Parse] or [Load] returned.
func (p *Pipeline) Stage(name string) *Stage {
	if i, ok := p.byName[name]; ok && i < len(p.Stages) && p.Stages[i].Name == name {
		return p.Stages[i]
	}
	for _, s := range p.Stages {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Readers returns the stages that read the output of the named stage, in
// file order.
func (p *Pipeline) Readers(name string) []*Stage {
	var out []*Stage
	for _, s := range p.Stages {
		for _, in := range s.From {
			if in.Stage == name {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// Order returns the stages in topological order: every stage comes after
// the stages it reads from. The pipeline is acyclic once validated; a
// stage on a cycle, or reading a stage that is not there, is left out,
// with the stages after it.
//
// The order is that of sweeps over the stages in file order, each taking
// every stage whose inputs are taken: the stages taken by the first sweep
// in file order, then those of the second, and so on. It is computed in
// one pass over the graph (Kahn's algorithm), each stage's sweep being the
// latest its inputs allow: the sweep of an input listed before it, or the
// one after the sweep of an input listed after it.
func (p *Pipeline) Order() []*Stage {
	n := len(p.Stages)
	first := make(map[string]int, n) // the index of the first stage of each name
	for i, s := range p.Stages {
		if _, ok := first[s.Name]; !ok {
			first[s.Name] = i
		}
	}
	waiting := make([]int, n)   // inputs not yet taken
	readers := make([][]int, n) // the edges of the data flow
	for i, s := range p.Stages {
		for _, in := range s.From {
			waiting[i]++
			if j, ok := first[in.Stage]; ok {
				readers[j] = append(readers[j], i)
			}
		}
	}
	sweep := make([]int, n)
	taken := make([]int, 0, n)
	for i := range p.Stages {
		if waiting[i] == 0 {
			sweep[i] = 1
			taken = append(taken, i)
		}
	}
	for k := 0; k < len(taken); k++ {
		u := taken[k]
		for _, v := range readers[u] {
			at := sweep[u]
			if u > v {
				at++
			}
			sweep[v] = max(sweep[v], at)
			if waiting[v]--; waiting[v] == 0 {
				taken = append(taken, v)
			}
		}
	}
	slices.SortFunc(taken, func(a, b int) int { return cmp.Or(cmp.Compare(sweep[a], sweep[b]), cmp.Compare(a, b)) })
	out := make([]*Stage, len(taken))
	for k, i := range taken {
		out[k] = p.Stages[i]
	}
	return out
}
