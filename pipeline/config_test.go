package pipeline

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestBuild(t *testing.T) {
	reg := testRegistry(t)
	good := Config{
		Name:     "built",
		Settings: map[string]any{"ack_wait": 45 * time.Second, "max_deliver": 3, "max_outage": 10 * time.Minute},
		Stages: []StageConfig{
			{Name: "read", Source: "gen", With: map[string]any{"count": 10}},
			{Name: "split", Transform: "route", With: map[string]any{"routes": []string{"big", "small"}}},
			{Name: "big", Sink: "out", From: []string{"split.big"}, MaxOutage: "1h"},
			{Name: "small", Sink: "file", From: []string{"split.small"}, With: map[string]any{"path": "${DIR}/small.jsonl"}},
		},
	}
	p, err := Build(good, Options{Registry: reg, LookupEnv: env(map[string]string{"DIR": "/tmp/x"})})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "built" || len(p.Stages) != 4 || p.Settings.AckWait != 45*time.Second || p.Settings.MaxDeliver != 3 {
		t.Errorf("got %+v", p)
	}
	if big, small := p.Stage("big").MaxOutage, p.Stage("small").MaxOutage; big != time.Hour || small != 10*time.Minute {
		t.Errorf("max_outage: big %v, small %v; want 1h, the setting's 10m", big, small)
	}
	if got := p.Stage("small").Params.String("path"); got != "/tmp/x/small.jsonl" {
		t.Errorf("path: got %q", got)
	}
	if got := p.Stage("big").From; len(got) != 1 || got[0] != (Input{Stage: "split", Route: "big"}) {
		t.Errorf("from: got %v", got)
	}

	bad := good
	bad.Stages = append([]StageConfig(nil), good.Stages...)
	bad.Stages[0].With = map[string]any{"count": "many"}
	bad.Stages[2].From = []string{"split.huge"}
	_, err = Build(bad, Options{Registry: reg, LookupEnv: env(map[string]string{"DIR": "/tmp/x"})})
	var ps Problems
	if !errors.As(err, &ps) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v, want Problems", err)
	}
	for _, want := range []string{
		`pipeline "built": stage "read": source "gen": parameter "count": want an integer, got "many"`,
		`pipeline "built": stage "big": from "split.huge": transform "route" has no route "huge"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems:\n%v\nwant one with %q", err, want)
		}
	}
}
