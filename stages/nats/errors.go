package nats

import (
	"context"
	"errors"
	"net"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/stages"
)

// JetStream error codes of a server that cannot store for now: the
// stream is full (with discard new), the server is short of resources,
// the stream or its cluster has no leader, JetStream is off.
const (
	jsErrStoreFailed          jetstream.ErrorCode = 10077
	jsErrInsufficientResource jetstream.ErrorCode = 10023
	jsErrClusterNotAvailable  jetstream.ErrorCode = 10008
	jsErrClusterNotLeader     jetstream.ErrorCode = 10009
	jsErrStreamOffline        jetstream.ErrorCode = 10118
	jsErrStreamOfflineReason  jetstream.ErrorCode = 10194
)

// connOutage tells whether err says the NATS server cannot take what the
// stage sends for now, whatever the record: the connection is closed,
// lost or reconnecting, its buffer for a reconnect is full, an answer did
// not come in time, JetStream is off or short of resources, a stream has
// no leader. It does not cover no responders, whose meaning depends on
// the stage.
func connOutage(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false // the run is stopping, not the server
	}
	if api, ok := errors.AsType[*jetstream.APIError](err); ok && api != nil {
		switch api.ErrorCode {
		case jsErrStoreFailed, jsErrInsufficientResource, jsErrClusterNotAvailable, jsErrClusterNotLeader,
			jsErrStreamOffline, jsErrStreamOfflineReason,
			jetstream.JSErrCodeJetStreamNotEnabled, jetstream.JSErrCodeJetStreamNotEnabledForAccount:
			return true
		}
		return api.Code == 503 || api.Code == 408
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	for _, target := range []error{
		nats.ErrConnectionClosed, nats.ErrConnectionDraining, nats.ErrConnectionReconnecting,
		nats.ErrDisconnected, nats.ErrReconnectBufExceeded, nats.ErrStaleConnection, nats.ErrNoServers,
		nats.ErrTimeout, context.DeadlineExceeded,
		jetstream.ErrConnectionClosed, jetstream.ErrAsyncPublishTimeout, jetstream.ErrTooManyStalledMsgs,
		jetstream.ErrJetStreamPublisherClosed,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// batchOutage returns the first error of errs that is an outage, or nil.
// A sink returns it for its whole batch: when the server is down the
// batch waits for it, rather than failing record by record (the records
// of the batch that were written are written again, which their
// Nats-Msg-Id or key makes harmless; those that failed for their own
// sake fail again).
func batchOutage(errs []error) error {
	for _, err := range errs {
		if stages.IsOutage(err) {
			return err
		}
	}
	return nil
}
