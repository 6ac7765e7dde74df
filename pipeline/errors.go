package pipeline

import (
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"
)

// ErrInvalid is matched, with errors.Is, by the [Problems] that [Parse] and
// [Load] return for a pipeline file that does not validate.
var ErrInvalid = errors.New("sluice: invalid pipeline")

// ErrTooLarge is wrapped by the error of [Load] for a file larger than
// [MaxFileSize], which names the file, its size and the limit.
var ErrTooLarge = errors.New("sluice: pipeline file too large")

// ErrInvalidPolicy is wrapped by the error of [Policy.Validate], and of
// [Parse] and [Load] given a policy that does not validate.
var ErrInvalidPolicy = errors.New("sluice: invalid policy")

// ErrUnknownFormat is wrapped by the error of [Pipeline.Graph] for a format
// other than "mermaid" and "dot".
var ErrUnknownFormat = errors.New("sluice: unknown graph format")

// String returns the position as "file:line:col", leaving out what is
// unknown (zero).
func (p Position) String() string {
	s := p.File
	if p.Line > 0 {
		s += ":" + strconv.Itoa(p.Line)
		if p.Col > 0 {
			s += ":" + strconv.Itoa(p.Col)
		}
	}
	return s
}

// Problem is one thing wrong in a pipeline file, at the key or value it is
// about.
type Problem struct {
	Pos Position
	Msg string
}

// String returns the problem as "FILE:LINE:COL: message".
func (p Problem) String() string { return p.Pos.String() + ": " + p.Msg }

// Problems is the error of a pipeline file that does not validate: every
// problem found, sorted by position. errors.Is(problems, ErrInvalid) is
// true; errors.As gives the list back.
type Problems []Problem

// Error returns the problems, one per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Is reports whether target is [ErrInvalid].
func (ps Problems) Is(target error) bool { return target == ErrInvalid }

// sort orders the problems by line, column and then message.
func (ps Problems) sort() {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col),
			strings.Compare(a.Msg, b.Msg),
		)
	})
}
