package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 30 * time.Second}
	for _, tt := range []struct {
		attempt int
		want    time.Duration
	}{
		{0, time.Second}, {1, 2 * time.Second}, {4, 16 * time.Second}, {5, 30 * time.Second}, {100, 30 * time.Second},
	} {
		if got := b.Delay(tt.attempt); got != tt.want {
			t.Errorf("Delay(%d) = %s, want %s", tt.attempt, got, tt.want)
		}
	}
	j := Backoff{Min: time.Second, Max: time.Second, Jitter: 0.5}
	for range 100 {
		if d := j.Delay(3); d < 500*time.Millisecond || d > time.Second {
			t.Fatalf("jittered delay %s outside [0.5s, 1s]", d)
		}
	}
}

func TestDo(t *testing.T) {
	errAgain, errFinal := errors.New("again"), errors.New("final")
	again := func(err error) bool { return errors.Is(err, errAgain) }
	fast := Backoff{Min: time.Millisecond, Max: time.Millisecond}
	for _, tt := range []struct {
		name    string
		results []error // what fn returns, call after call; the last repeats
		limit   time.Duration
		want    error
		calls   int
	}{
		{"succeeds at once", []error{nil}, 0, nil, 1},
		{"succeeds after retries", []error{errAgain, errAgain, nil}, 0, nil, 3},
		{"stops on an error not retried", []error{errAgain, errFinal}, 0, errFinal, 2},
		{"gives up after the limit", []error{errAgain}, 20 * time.Millisecond, errAgain, -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calls, heard := 0, 0
			err := Do(context.Background(), fast, tt.limit, again, func(error) { heard++ }, func() error {
				r := tt.results[min(calls, len(tt.results)-1)]
				calls++
				return r
			})
			if !errors.Is(err, tt.want) && !(err == nil && tt.want == nil) {
				t.Fatalf("Do = %v, want %v", err, tt.want)
			}
			if tt.calls >= 0 && calls != tt.calls {
				t.Fatalf("%d calls, want %d", calls, tt.calls)
			}
			if heard != calls-1 && (tt.want == nil || errors.Is(tt.want, errFinal)) {
				t.Fatalf("each heard %d errors, want %d", heard, calls-1)
			}
		})
	}
}

func TestDoStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	errAgain := errors.New("again")
	calls := 0
	err := Do(ctx, Backoff{Min: time.Hour, Max: time.Hour}, 0, func(error) bool { return true }, nil, func() error {
		calls++
		cancel()
		return errAgain
	})
	if !errors.Is(err, errAgain) || calls != 1 {
		t.Fatalf("Do = %v after %d calls; want the last error after 1", err, calls)
	}
}
