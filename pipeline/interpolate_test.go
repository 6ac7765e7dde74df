package pipeline

import (
	"reflect"
	"testing"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"HOST": "db", "PORT": "5432", "EMPTY": ""}
	tests := []struct {
		in, want string
		errs     []string
	}{
		{in: "plain", want: "plain"},
		{in: "${HOST}:${PORT}", want: "db:5432"},
		{in: "${HOST:-x}", want: "db"},
		{in: "${MISSING:-fallback}", want: "fallback"},
		{in: "${MISSING:-}", want: ""},
		{in: "${EMPTY:-fallback}", want: "fallback"},
		{in: "${EMPTY}", want: ""},
		{in: "${MISSING:-a:-b}", want: "a:-b"},
		{in: "$${HOST} costs $5 and $HOST", want: "${HOST} costs $5 and $HOST"},
		{in: "$${HOST}${HOST}", want: "${HOST}db"},
		{in: "${MISSING}", errs: []string{`undefined variable "MISSING" (set it or give a default: ${MISSING:-value})`}},
		{in: "${A} ${B}", errs: []string{`undefined variable "A" (set it or give a default: ${A:-value})`, `undefined variable "B" (set it or give a default: ${B:-value})`}},
		{in: "${}", errs: []string{`bad variable reference "${}": want ${NAME} or ${NAME:-default}`}},
		{in: "${1X}", errs: []string{`bad variable reference "${1X}": want ${NAME} or ${NAME:-default}`}},
		{in: "x ${HOST", errs: []string{`unterminated "${HOST": want ${NAME} or ${NAME:-default}`}},
	}
	for _, tt := range tests {
		got, errs, _ := expand(tt.in, env(vars), nil)
		if len(tt.errs) > 0 {
			if !reflect.DeepEqual(errs, tt.errs) {
				t.Errorf("expand(%q) errors = %q, want %q", tt.in, errs, tt.errs)
			}
			continue
		}
		if got != tt.want || errs != nil {
			t.Errorf("expand(%q) = %q, %q, want %q", tt.in, got, errs, tt.want)
		}
	}
}

func TestInterpolation(t *testing.T) {
	src := `name: ${NAME:-orders}
description: "${DESC}"
settings:
  max_deliver: ${TRIES:-7}
  ack_wait: ${WAIT}
stages:
  - name: read
    source: file
    with:
      path: ${DATA_DIR:-data}/in.csv
  - name: clean
    transform: map
    replicas: ${N:-4}
    with:
      expr: '"$${HOME}" + name'
      n: ${N:-4}
  - name: write
    sink: file
    with:
      path: "${N:-4}"
`
	p := mustParse(t, src, map[string]string{"DESC": "from the environment", "WAIT": "45s", "DATA_DIR": "/srv"})
	if p.Name != "orders" || p.Description != "from the environment" {
		t.Errorf("name %q, description %q", p.Name, p.Description)
	}
	if p.Settings.MaxDeliver != 7 || p.Settings.AckWait.String() != "45s" {
		t.Errorf("settings %+v", p.Settings)
	}
	if got := p.Stage("read").Params.String("path"); got != "/srv/in.csv" {
		t.Errorf("path = %q", got)
	}
	clean := p.Stage("clean")
	if clean.Replicas != 4 {
		t.Errorf("replicas = %d, want 4", clean.Replicas)
	}
	if got := clean.Params.Get("n"); got != 4 {
		t.Errorf("n = %#v, want the int 4", got)
	}
	if got := clean.Params.String("expr"); got != `"${HOME}" + name` {
		t.Errorf("expr = %q", got)
	}
	if got := p.Stage("write").Params.Get("path"); got != "4" {
		t.Errorf("quoted path = %#v, want the string \"4\"", got)
	}
}

func TestInterpolationProblems(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"undefined", "name: p\nstages:\n  - {name: s, source: file, with: {path: \"${DIR}/x\"}}\n", []string{
			`3:42 undefined variable "DIR" (set it or give a default: ${DIR:-value})`}},
		{"undefined in settings", "name: p\nsettings:\n  ack_wait: ${WAIT}\nstages: [{name: s, source: gen}]\n", []string{
			`3:13 undefined variable "WAIT"`}},
		{"quoted stays a string", "name: p\nsettings: {max_deliver: \"${N:-3}\"}\nstages: [{name: s, source: gen}]\n", []string{
			`2:25 settings.max_deliver: want an integer, got "3"`}},
		{"typed after expansion", "name: p\nstages:\n  - {name: s, source: gen}\n  - name: t\n    sink: out\n    replicas: ${N:-0}\n", []string{
			`6:15 stage "t": replicas must be >= 1 (got 0)`}},
		{"keys are not expanded", "name: p\n${KEY}: 1\nstages: [{name: s, source: gen}]\n", []string{
			`2:1 unknown key "${KEY}"`}},
		{"bad reference", "name: p\nstages:\n  - {name: s, source: gen, with: {count: \"${}\"}}\n", []string{
			`3:42 bad variable reference "${}"`}},
		{"in a list", "name: p\nplugins: []\nstages: [{name: s, source: gen}]\nsettings: {backoff: [1s, $X, '${Y}']}\n", []string{
			`4:26 settings.backoff[1]: want a duration such as "30s", got "$X"`,
			`4:30 undefined variable "Y"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProblems(t, problems(t, tt.src, nil), tt.want)
		})
	}
}
