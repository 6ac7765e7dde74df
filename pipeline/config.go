package pipeline

import (
	"errors"
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is a pipeline as Go values, for a program that builds its
// pipelines in code: the keys of the YAML file, checked by [Build] as
// [Parse] checks a file.
type Config struct {
	Name        string         `yaml:"name"`
	Description string         `yaml:"description,omitempty"`
	Settings    map[string]any `yaml:"settings,omitempty"` // as under settings: in YAML
	Plugins     []string       `yaml:"plugins,omitempty"`
	Stages      []StageConfig  `yaml:"stages"`
}

// StageConfig is one stage of a [Config]. Exactly one of Source,
// Transform and Sink names the stage's type.
type StageConfig struct {
	Name        string         `yaml:"name"`
	Description string         `yaml:"description,omitempty"`
	Source      string         `yaml:"source,omitempty"`
	Transform   string         `yaml:"transform,omitempty"`
	Sink        string         `yaml:"sink,omitempty"`
	From        []string       `yaml:"from,omitempty"` // "stage" or "stage.route"; default the stage before
	Replicas    int            `yaml:"replicas,omitempty"`
	OnError     string         `yaml:"on_error,omitempty"`
	MaxDeliver  int            `yaml:"max_deliver,omitempty"`
	Backoff     []string       `yaml:"backoff,omitempty"`
	MaxOutage   string         `yaml:"max_outage,omitempty"` // a duration such as "10m"
	EventTime   string         `yaml:"event_time,omitempty"` // expression giving each output's event time
	Key         string         `yaml:"key,omitempty"`        // expression giving each output's key
	Partitions  int            `yaml:"partitions,omitempty"` // partitions of the output by key
	With        map[string]any `yaml:"with,omitempty"`       // the type's parameters
}

// Build validates a pipeline built in code and returns it ready to run.
// Values of With and Settings are what YAML would hold (strings, numbers,
// booleans, lists and maps of them); a time.Duration is taken as its text.
// ${VAR} in strings is interpolated as in a file. A config that does not
// validate gives [Problems], each naming the stage and parameter, without
// file positions.
func Build(c Config, opts Options) (*Pipeline, error) {
	c.Settings = plainValues(c.Settings)
	c.Stages = append([]StageConfig(nil), c.Stages...)
	for i := range c.Stages {
		c.Stages[i].With = plainValues(c.Stages[i].With)
	}
	data, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("sluice: pipeline %q: %w", c.Name, err)
	}
	where := fmt.Sprintf("pipeline %q", c.Name)
	p, err := Parse(where, data, opts)
	var ps Problems
	if errors.As(err, &ps) {
		for i := range ps {
			ps[i].Pos = Position{File: where} // lines of the YAML made here mean nothing to the caller
		}
		return nil, ps
	}
	if err != nil {
		return nil, err
	}
	p.File = ""
	return p, nil
}

// plainValues returns m with time.Duration values, at any depth, turned
// into their text.
func plainValues(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = plainValue(v)
	}
	return out
}

func plainValue(v any) any {
	switch x := v.(type) {
	case time.Duration:
		return x.String()
	case []time.Duration:
		out := make([]string, len(x))
		for i, d := range x {
			out[i] = d.String()
		}
		return out
	case map[string]any:
		return plainValues(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plainValue(e)
		}
		return out
	}
	return v
}
