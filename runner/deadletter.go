package runner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/stages"
)

// deadLetter builds the dead-letter message for a payload that stage could
// not process in run: the original headers and payload, plus Sluice-Error,
// Sluice-Stage, Sluice-Deliveries and Sluice-Run, with a Nats-Msg-Id
// derived from the input's own id so that a redelivered input is not
// dead-lettered twice.
// subject is the input's subject, empty for a record a source could not
// read; it and the input's own Nats-Msg-Id are kept for a replay.
//
// A payload too large for the server (limit is its max_payload) is cut,
// and Sluice-Truncated gives its full length; keepWhole keeps it whole.
func deadLetter(p, stage string, run uint64, id, subject string, data []byte, hdr nats.Header, reason error, deliveries uint64, limit int64) *nats.Msg {
	h := make(nats.Header, len(hdr)+8)
	for k, v := range hdr {
		h[k] = v
	}
	if room := limit - headerRoom; int64(len(data)) > room {
		h.Set(stages.HeaderTruncated, strconv.Itoa(len(data)))
		data = data[:max(room, 0)]
	}
	if in := hdr.Get(stages.HeaderMsgID); in != "" {
		h.Set(stages.HeaderInputID, in)
	}
	if subject != "" {
		h.Set(stages.HeaderSubject, subject)
	}
	h.Set(stages.HeaderError, headerSafe(reason.Error()))
	h.Set(stages.HeaderStage, stage)
	h.Set(stages.HeaderDeliveries, strconv.FormatUint(deliveries, 10))
	h.Set(stages.HeaderRun, strconv.FormatUint(run, 10))
	h.Set(stages.HeaderMsgID, id)
	return &nats.Msg{Subject: schema.DLQSubject(p, stage), Data: data, Header: h}
}

// keepWhole keeps the whole payload of a dead letter too large for NATS,
// data, in the pipeline's object store under the dead letter's ID, and
// sets HeaderObject on dl to name it. If it cannot, the dead letter keeps
// the cut payload alone and says why in its error.
func (r *run) keepWhole(ctx context.Context, dl *nats.Msg, data []byte) {
	if dl.Header.Get(stages.HeaderTruncated) == "" {
		return
	}
	name := dl.Header.Get(stages.HeaderMsgID)
	bucket := schema.OversizedBucket(r.p.Name)
	err := func() error {
		js, err := jetstream.New(r.nc)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, r.opts.StopTimeout)
		defer cancel()
		obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:      bucket,
			Description: fmt.Sprintf("sluice pipeline %s: whole payloads of dead letters too large for NATS", r.p.Name),
			Replicas:    r.p.Settings.Replicas,
		})
		if err != nil {
			return err
		}
		_, err = obs.PutBytes(ctx, name, data)
		return err
	}()
	if err != nil {
		r.log.Warn("the whole payload of a dead letter too large for NATS is not kept: only its start is", "err", err)
		dl.Header.Set(stages.HeaderError, headerSafe(dl.Header.Get(stages.HeaderError)+" (whole payload not kept: "+err.Error()+")"))
		return
	}
	dl.Header.Set(stages.HeaderObject, bucket+"/"+name)
}

// headerRoom is what a message's headers and subject may take of the
// server's max_payload: the payload gets the rest.
const headerRoom = 16 << 10

// errTooLarge tells that a payload does not fit in a NATS message.
var errTooLarge = errors.New("too large for NATS")

// checkSize fails, permanently, a payload that the server would refuse.
func (r *run) checkSize(data []byte) error {
	if room := r.nc.MaxPayload() - headerRoom; int64(len(data)) > room {
		return stages.Permanent(fmt.Errorf("record of %d bytes is %w: the server's max_payload leaves %d bytes for a payload", len(data), errTooLarge, room))
	}
	return nil
}

// headerSafe makes text fit in a header value: one line, bounded length.
func headerSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	const maxLen = 1024
	if len(s) > maxLen {
		s = s[:maxLen] + "..."
	}
	return s
}
