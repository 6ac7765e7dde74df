package cli

import (
	"strings"
	"testing"
)

// warnedPipeline is valid, with one warning: ack_wait outlasts the
// default duplicate window.
const warnedPipeline = `name: warned
settings:
  ack_wait: 2m
stages:
  - {name: gen, source: generate, with: {count: 1}}
  - {name: print, sink: stdout}
`

// cleanPipeline is valid, without a warning.
const cleanPipeline = `name: clean
stages:
  - {name: gen, source: generate, with: {count: 1}}
  - {name: print, sink: stdout}
`

// invalidPipeline does not validate.
const invalidPipeline = `name: invalid
stages:
  - {name: gen, source: generate, with: {count: many}}
`

func TestLintCommand(t *testing.T) {
	dir := inEmptyDir(t)
	warned := writeFile(t, dir, "warned.yaml", warnedPipeline)
	clean := writeFile(t, dir, "clean.yaml", cleanPipeline)
	invalid := writeFile(t, dir, "invalid.yaml", invalidPipeline)
	warning := warned + ":3:13: warning: settings: dedup_window (1m) is not longer than ack_wait (2m)"
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     []string // lines, in order
		stderr     []string // each the start of a line, in order
		noWarnings bool
	}{
		{"clean", []string{"lint", clean}, ExitOK,
			[]string{clean + ": ok (2 stages, 0 warnings)"}, nil, true},
		{"warnings exit 0", []string{"lint", warned, clean}, ExitOK,
			[]string{warned + ": ok (2 stages, 1 warning)", clean + ": ok (2 stages, 0 warnings)"}, []string{warning}, false},
		{"deny warnings", []string{"lint", "--deny-warnings", clean, warned}, ExitFailure,
			[]string{clean + ": ok (2 stages, 0 warnings)", warned + ": ok (2 stages, 1 warning)"}, []string{warning}, false},
		{"deny warnings without any", []string{"lint", "--deny-warnings", clean}, ExitOK,
			[]string{clean + ": ok (2 stages, 0 warnings)"}, nil, true},
		{"invalid file", []string{"lint", "--deny-warnings", warned, invalid}, ExitUsage,
			[]string{warned + ": ok (2 stages, 1 warning)"}, []string{warning, invalid + ":3:49: stage \"gen\": source \"generate\": parameter \"count\""}, false},
		{"validate --strict", []string{"validate", "--strict", warned}, ExitFailure,
			[]string{warned + ": ok (2 stages, 1 warning)"}, []string{warning}, false},
		{"validate without --strict", []string{"validate", warned}, ExitOK,
			[]string{warned + ": ok (2 stages)"}, nil, true},
		{"no file", []string{"lint"}, ExitUsage, nil, []string{"sluice: lint: want at least one pipeline file"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := sluice(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			if got := outputLines(stdout); strings.Join(got, "\n") != strings.Join(tt.stdout, "\n") {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, strings.Join(tt.stdout, "\n"))
			}
			got := outputLines(stderr)
			ok := len(got) == len(tt.stderr)
			for i := 0; ok && i < len(got); i++ {
				ok = strings.HasPrefix(got[i], tt.stderr[i])
			}
			if !ok {
				t.Errorf("stderr:\n%s\nwant lines starting with:\n%s", stderr, strings.Join(tt.stderr, "\n"))
			}
			if tt.noWarnings && strings.Contains(stderr, "warning:") {
				t.Errorf("stderr has a warning:\n%s", stderr)
			}
		})
	}
}

// outputLines splits output into its lines.
func outputLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
