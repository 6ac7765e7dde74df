package pipetest

import (
	"bytes"
	"encoding/json"
	"math/big"
	"slices"
	"strconv"
	"strings"
)

// canonical returns v as canonical JSON: object keys sorted, numbers
// written the shortest way (150.0 is 150), no HTML escaping.
func canonical(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return strconv.Quote("unencodable: " + err.Error())
	}
	return canonicalBytes(b)
}

// canonicalBytes returns the JSON in b as canonical JSON, or b as a JSON
// string if it is not JSON.
func canonicalBytes(b []byte) string {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return encode(string(b))
	}
	return encode(normalize(v))
}

func encode(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return strconv.Quote("unencodable: " + err.Error())
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// normalize writes every number of v the same way, whatever its text:
// an integer as one, any other number as its shortest float64 text.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
	case json.Number:
		if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return json.Number(strconv.FormatInt(n, 10))
		}
		if f, ok := new(big.Float).SetString(string(x)); ok && f.IsInt() {
			if i, acc := f.Int(nil); acc == big.Exact {
				return json.Number(i.String())
			}
		}
		if f, err := strconv.ParseFloat(string(x), 64); err == nil {
			return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
		}
	}
	return v
}

// multisetDiff returns what want holds that got does not (missing) and
// what got holds that want does not (extra), counting repeats, each
// sorted.
func multisetDiff(want, got []string) (missing, extra []string) {
	left := make(map[string]int, len(got))
	for _, g := range got {
		left[g]++
	}
	for _, w := range want {
		if left[w] > 0 {
			left[w]--
			continue
		}
		missing = append(missing, w)
	}
	for _, g := range got {
		if left[g] > 0 {
			left[g]--
			extra = append(extra, g)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	return missing, extra
}

// match pairs each of n expectations with a distinct one of m candidates,
// ok(i, j) telling whether expectation i accepts candidate j, as many as
// possible (a maximum bipartite matching). It returns the candidate of
// each expectation, -1 for none.
func match(n, m int, ok func(i, j int) bool) []int {
	of := make([]int, m) // the expectation each candidate went to
	for j := range of {
		of[j] = -1
	}
	var try func(i int, seen []bool) bool
	try = func(i int, seen []bool) bool {
		for j := range m {
			if seen[j] || !ok(i, j) {
				continue
			}
			seen[j] = true
			if of[j] < 0 || try(of[j], seen) {
				of[j] = i
				return true
			}
		}
		return false
	}
	for i := range n {
		try(i, make([]bool, m))
	}
	to := make([]int, n)
	for i := range to {
		to[i] = -1
	}
	for j, i := range of {
		if i >= 0 {
			to[i] = j
		}
	}
	return to
}
