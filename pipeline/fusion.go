package pipeline

import "github.com/sluicehq/sluice/stages"

// Chains returns the stages that run fused: each chain begins with a
// source and goes on with the stages that read it, one after the other,
// for as long as no stream is needed between two of them. The runner then
// runs a chain as one step, in the source's process: a record read goes
// through every stage of the chain before the next is read, and the
// source's checkpoint moves only once what came of a record was written
// (the chain ends in a sink) or stored in the stream after the chain.
// Chains of one stage are left out; with the fusion setting off, there
// are none.
//
// Stage n runs fused with stage u, the last of a chain, when all of these
// hold: n reads u alone, on u's default output, and nothing else reads u;
// u declares no routes; n is a sink, or a transform whose type is
// stateless ([stages.Spec].Stateless); n has one worker (replicas: 1) and
// does not ask for a stream (buffer: durable); neither sets key,
// partitions or event_time; and no stage of the pipeline acts on
// watermarks. A stream stays wherever one of them fails: a fan-out, a
// repartition, a window, parallel workers, or a stage that asks for it.
func (p *Pipeline) Chains() [][]*Stage {
	if p.Settings.Fusion == FusionOff {
		return nil
	}
	for _, s := range p.Stages {
		if s.Spec != nil && s.Spec.Watermarks {
			return nil
		}
	}
	var chains [][]*Stage
	for _, s := range p.Stages {
		if s.Role != stages.RoleSource {
			continue
		}
		chain := []*Stage{s}
		for u := s; u.Role != stages.RoleSink; {
			n := p.fusesAfter(u)
			if n == nil {
				break
			}
			chain = append(chain, n)
			u = n
		}
		if len(chain) > 1 {
			chains = append(chains, chain)
		}
	}
	return chains
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
	if len(n.From) != 1 || n.From[0].Route != "" || n.Replicas != 1 || n.Durable || !unkeyed(n) || n.Spec == nil {
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
