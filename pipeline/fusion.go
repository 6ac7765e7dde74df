package pipeline

import "github.com/sluicehq/sluice/stages"

// Chains returns the stages that run fused. A chain begins with a source,
// or with a transform that reads a stream, and goes on with the stages
// that read it, one after the other, for as long as no stream is needed
// between two of them. The runner then runs a chain as one step: in the
// source's loop, or in each worker of the transform that heads it. A
// record read goes through every stage of the chain before the next is
// read, and the source's checkpoint moves (or the head's input is
// acknowledged) only once what came of the record was written (the
// chain ends in a sink) or stored in the stream after the chain. Chains of
// one stage are left out; with the fusion setting off, there are none.
//
// Stage n runs fused with stage u, the last of a chain, when all of these
// hold: n reads u alone, on u's default output, and nothing else reads u;
// u declares no routes; n is a sink, or a transform whose type is
// stateless ([stages.Spec].Stateless); n has as many workers as u (a
// source has one) and does not ask for a stream (buffer: durable);
// neither sets key, partitions or event_time; and no stage of the
// pipeline acts on watermarks. A transform heads a chain when it does not
// run fused after the stage it reads and reads no stage that sets key or
// partitions. A stream stays wherever one of these fails: a fan-out, a
// repartition, a window, a change in the number of workers, or a stage
// that asks for it.
func (p *Pipeline) Chains() [][]*Stage {
	if p.Settings.Fusion == FusionOff {
		return nil
	}
	for _, s := range p.Stages {
		if s.Spec != nil && s.Spec.Watermarks {
			return nil
		}
	}
	fused := make(map[string]bool)
	var chains [][]*Stage
	// In order, so that a stage fused after another is known as such
	// before it could head a chain of its own.
	for _, s := range p.Order() {
		if fused[s.Name] || !p.heads(s) {
			continue
		}
		chain := []*Stage{s}
		for u := s; u.Role != stages.RoleSink; {
			n := p.fusesAfter(u)
			if n == nil {
				break
			}
			chain = append(chain, n)
			fused[n.Name] = true
			u = n
		}
		if len(chain) > 1 {
			chains = append(chains, chain)
		}
	}
	return chains
}

// heads reports whether s may head a chain: a source, or a transform
// whose inputs are not partitioned.
func (p *Pipeline) heads(s *Stage) bool {
	switch s.Role {
	case stages.RoleSource:
		return true
	case stages.RoleTransform:
		for _, f := range s.From {
			if u := p.Stage(f.Stage); u == nil || !unkeyed(u) {
				return false
			}
		}
		return true
	}
	return false
}

// fusesAfter returns the stage that runs fused after u, or nil if a
// stream follows u.
func (p *Pipeline) fusesAfter(u *Stage) *Stage {
	if u.Spec == nil || u.Spec.Routes != nil || !unkeyed(u) {
		return nil
	}
	readers := p.Readers(u.Name)
	if len(readers) != 1 {
		return nil
	}
	n := readers[0]
	if len(n.From) != 1 || n.From[0].Route != "" || n.Replicas != u.Replicas || n.Durable || !unkeyed(n) || n.Spec == nil {
		return nil
	}
	if n.Role == stages.RoleTransform && !n.Spec.Stateless {
		return nil
	}
	return n
}

// unkeyed reports whether s sets none of key, partitions and event_time.
func unkeyed(s *Stage) bool {
	return s.Key == "" && s.Partitions == 0 && s.EventTime == ""
}

// FusedWith returns the chain (see [Pipeline.Chains]) that stage name runs
// in, or nil if it runs alone.
func (p *Pipeline) FusedWith(name string) []*Stage {
	for _, c := range p.Chains() {
		for _, s := range c {
			if s.Name == name {
				return c
			}
		}
	}
	return nil
}
