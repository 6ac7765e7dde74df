package pipeline

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/internal/bytesize"
	"github.com/sluicehq/sluice/internal/yamlnode"
)

// Keys of the settings mapping.
var settingsKeys = []string{"storage", "retention", "max_age", "max_buffer", "max_buffer_bytes", "dedup_window", "ack_wait", "max_deliver", "backoff", "max_outage", "replicas", "max_out_of_orderness", "idle_timeout", "fusion"}

// settings decodes the settings mapping n over the defaults in s.
func (d *decoder) settings(n *yaml.Node, s *Settings) {
	if yamlnode.IsNull(n) {
		return
	}
	fields := d.mapping(n, "settings", settingsKeys)
	for _, key := range settingsKeys {
		f, ok := fields[key]
		if !ok {
			continue
		}
		n, where := f.value, "settings."+key
		switch key {
		case "storage":
			if v, ok := d.enum(n, where, "file", "memory"); ok {
				s.Storage = v
			}
		case "retention":
			if v, ok := d.enum(n, where, "interest", "limits"); ok {
				s.Retention = v
			}
		case "max_age":
			if v, ok := d.durationMin(n, where, 0); ok {
				s.MaxAge = v
			}
		case "max_buffer":
			if v, ok := d.intMin(n, where, 1); ok {
				s.MaxBuffer = v
			}
		case "max_buffer_bytes":
			if v, ok := d.byteSize(n, where); ok && v < minBufferBytes {
				d.problem(n, "%s must be at least 1MiB, the largest message NATS takes by default (got %d bytes)", where, v)
			} else if ok {
				s.MaxBufferBytes = v
			}
		case "dedup_window":
			if v, ok := d.duration(n, where); ok && v <= 0 {
				d.problem(n, "%s must be > 0 (got %v)", where, v)
			} else if ok {
				s.DedupWindow = v
			}
		case "ack_wait":
			if v, ok := d.durationMin(n, where, time.Second); ok {
				s.AckWait = v
			}
		case "max_deliver":
			if v, ok := d.intMin(n, where, 1); ok {
				s.MaxDeliver = v
			}
		case "backoff":
			if v, ok := d.backoff(n, where); ok {
				s.Backoff = v
			}
		case "max_outage":
			if v, ok := d.durationMin(n, where, 0); ok {
				s.MaxOutage = v
			}
		case "max_out_of_orderness":
			if v, ok := d.durationMin(n, where, 0); ok {
				s.MaxOutOfOrderness = v
			}
		case "idle_timeout":
			if v, ok := d.durationMin(n, where, 100*time.Millisecond); ok {
				s.IdleTimeout = v
			}
		case "fusion":
			if v, ok := d.enum(n, where, FusionAuto, FusionOff); ok {
				s.Fusion = v
			}
		case "replicas":
			if v, ok := d.intMin(n, where, 1); ok && v > 5 {
				d.problem(n, "%s must be from 1 to 5, the copies JetStream keeps at most (got %d); 3 is usual on a cluster", where, v)
			} else if ok {
				s.Replicas = v
			}
		}
	}
}

// backoff decodes a list of durations, each >= 0.
func (d *decoder) backoff(n *yaml.Node, where string) ([]time.Duration, bool) {
	if n.Kind != yaml.SequenceNode {
		d.problem(n, "%s: want a list of durations such as [1s, 5s], got %s", where, yamlnode.Describe(n))
		return nil, false
	}
	out := make([]time.Duration, 0, len(n.Content))
	for i, item := range n.Content {
		v, ok := d.durationMin(yamlnode.Resolve(item), fmt.Sprintf("%s[%d]", where, i), 0)
		if !ok {
			return nil, false
		}
		out = append(out, v)
	}
	return out, true
}

// enum returns the scalar n if it is one of allowed.
func (d *decoder) enum(n *yaml.Node, where string, allowed ...string) (string, bool) {
	s, ok := d.str(n, where)
	if ok && !slices.Contains(allowed, s) {
		d.problem(n, "%s must be one of %s (got %q)", where, strings.Join(allowed, ", "), s)
		return "", false
	}
	return s, ok
}

// intMin returns the scalar n as an int of at least min.
func (d *decoder) intMin(n *yaml.Node, where string, min int) (int, bool) {
	v, ok := d.int(n, where)
	if ok && v < min {
		d.problem(n, "%s must be >= %d (got %d)", where, min, v)
		return 0, false
	}
	return v, ok
}

// duration returns the scalar n as a Go duration such as "1h30m".
func (d *decoder) duration(n *yaml.Node, where string) (time.Duration, bool) {
	if d.bad[n] {
		return 0, false
	}
	if n.Kind == yaml.ScalarNode && !yamlnode.IsNull(n) {
		if v, err := time.ParseDuration(n.Value); err == nil {
			return v, true
		}
	}
	d.problem(n, "%s: want a duration such as \"30s\", got %s", where, yamlnode.Describe(n))
	return 0, false
}

// durationMin returns the scalar n as a duration of at least min.
func (d *decoder) durationMin(n *yaml.Node, where string, min time.Duration) (time.Duration, bool) {
	v, ok := d.duration(n, where)
	if ok && v < min {
		d.problem(n, "%s must be >= %v (got %v)", where, min, v)
		return 0, false
	}
	return v, ok
}

// minBufferBytes is the least max_buffer_bytes: a buffer must hold a
// message of the largest size NATS accepts by default.
const minBufferBytes = 1 << 20

// byteSize returns the scalar n as a number of bytes: an integer, or an
// integer followed by B, KB, MB, GB, TB, KiB, MiB, GiB or TiB.
func (d *decoder) byteSize(n *yaml.Node, where string) (int64, bool) {
	if d.bad[n] {
		return 0, false
	}
	if n.Kind == yaml.ScalarNode && !yamlnode.IsNull(n) {
		if v, err := bytesize.Parse(n.Value); err == nil {
			return v, true
		}
	}
	d.problem(n, "%s: want a size in bytes such as 512MiB or 1GB, got %s", where, yamlnode.Describe(n))
	return 0, false
}
