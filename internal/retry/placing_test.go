package retry

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

func TestWhilePlacing(t *testing.T) {
	noPeers := &jetstream.APIError{Code: 400, ErrorCode: errCodeNoPeers, Description: "no suitable peers for placement"}
	inUse := &jetstream.APIError{Code: 400, ErrorCode: errCodeNameInUse, Description: "stream name already in use"}
	other := errors.New("bad config")
	tests := []struct {
		name    string
		results []error // what setUp returns, call after call
		calls   int
		want    error
	}{
		{"at once", []error{nil}, 1, nil},
		{"after the cluster formed", []error{noPeers, noPeers, nil}, 3, nil},
		{"after another process created it", []error{inUse, nil}, 2, nil},
		{"after a request timed out", []error{context.DeadlineExceeded, nil}, 2, nil},
		{"another error is not retried", []error{other}, 1, other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := WhilePlacing(context.Background(), nil, func() error {
				calls++
				return tt.results[calls-1]
			})
			if !errors.Is(err, tt.want) || calls != tt.calls {
				t.Fatalf("got %v after %d calls, want %v after %d", err, calls, tt.want, tt.calls)
			}
		})
	}
	t.Run("stops with its context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := WhilePlacing(ctx, nil, func() error { return noPeers })
		if !errors.Is(err, noPeers) {
			t.Fatalf("got %v", err)
		}
	})
}
