package stages

// DefaultHasType lets the conformance test of package stages_test check
// the defaults of the built-in specs as [Registry.Register] does.
var DefaultHasType = defaultHasType
