package runner

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

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
// and Sluice-Truncated gives its full length.
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
