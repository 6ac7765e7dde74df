package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/errtext"
	"github.com/sluicehq/sluice/stages/internal/kvbucket"
)

// kvSinkInFlight bounds the puts a Write has in flight at once.
const kvSinkInFlight = 64

func kvSinkSpec() stages.Spec {
	return stages.Spec{
		Name:    "kv",
		Summary: "Write each record as the value of a key in a NATS KV bucket",
		Doc: `Puts each record into bucket under the key that key gives (fields as ` +
			`top-level names, msg as the metadata): a string as it is, a number ` +
			`in decimal. The value is the record's payload as it came, or what ` +
			`value gives: a string as its bytes, anything else as JSON. With ` +
			`delete, a record for which it is true deletes its key instead (a ` +
			`delete marker, as kv_watch reports it). The bucket is created if ` +
			`missing (file storage, one value per key, no expiry, as many ` +
			`copies as the pipeline's streams); an existing bucket is used as ` +
			`it is.

Write returns once the server stored every put (in a cluster, on a ` +
			`majority of the bucket's copies), then the inputs are acknowledged: ` +
			`delivery is at-least-once and idempotent, since putting a key's ` +
			`value again leaves the same value (a bucket that keeps history ` +
			`gets another revision). The puts of a batch run concurrently, and ` +
			`of several records of one key in a batch only the last is written; ` +
			`across batches and workers there is no order: when records of one ` +
			`key are in flight at once, the value left is any of theirs.

A record whose key expression fails or gives a key that is not valid ` +
			`(keys are tokens separated by '.', of letters, digits and "-/_=", ` +
			`at most 1024 bytes), or a value the server refuses (over its ` +
			`max_payload or the bucket's value size) goes to the dead-letter ` +
			`stream, naming the key. A connection that is closed or lost, a put ` +
			`not answered in time (or before the write's deadline), no answer ` +
			`at all (the bucket was deleted, JetStream is off) and a server ` +
			`short of resources are an outage: the whole batch fails, and the ` +
			`runner holds the stage, keeping it and trying again until the ` +
			`bucket is back, and dead-letters none of it. Any other NATS error ` +
			`is retried with the pipeline's backoff.

Example:

    - name: latest
      sink: kv
      with:
        bucket: customers
        key: '"customer." + string(id)'`,
		Params: []stages.Param{
			{Name: "bucket", Type: stages.TypeString, Required: true, Doc: "The KV bucket to write; created if missing."},
			{Name: "key", Type: stages.TypeExpr, Required: true, Doc: "Expression giving the key of each record."},
			{Name: "value", Type: stages.TypeExpr, Doc: "Expression giving the value (a string as its bytes, else JSON); default the payload as it is."},
			{Name: "delete", Type: stages.TypeExpr, Doc: "Boolean expression; true deletes the key instead of writing it, as for the delete records of kv_watch: 'op == \"delete\"'."},
		},
		Check:   checkKVSink,
		NewSink: newKVSink,
	}
}

func checkKVSink(p stages.Params) error {
	return kvbucket.CheckBucketName("bucket", p.String("bucket"))
}

// kvSink puts records into a bucket. Write is safe for concurrent use:
// each call takes a set of compiled expressions from a pool.
type kvSink struct {
	kv    jetstream.KeyValue
	exprs sync.Pool // of *kvExprs

	mu     sync.RWMutex // held for reading by Write, for writing by Close
	closed bool
}

var _ stages.Sink = (*kvSink)(nil)

// kvExprs are the compiled expressions of one kv sink, for one Write at a
// time; value and del are nil when not given.
type kvExprs struct {
	key, value, del *stages.Expr
}

func compileKVExprs(p stages.Params) (*kvExprs, error) {
	var e kvExprs
	var err error
	if e.key, err = stages.CompileParam(p, "key"); err != nil {
		return nil, err
	}
	if p.Has("value") {
		if e.value, err = stages.CompileParam(p, "value"); err != nil {
			return nil, err
		}
	}
	if p.Has("delete") {
		if e.del, err = stages.CompileParam(p, "delete"); err != nil {
			return nil, err
		}
	}
	return &e, nil
}

func newKVSink(p stages.Params, info stages.Info) (stages.Sink, error) {
	if err := checkKVSink(p); err != nil {
		return nil, err
	}
	first, err := compileKVExprs(p)
	if err != nil {
		return nil, err
	}
	js, err := kvbucket.JetStream(info, "kv")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), kvbucket.SetupTimeout)
	defer cancel()
	kv, err := kvbucket.Open(ctx, js, jetstream.KeyValueConfig{
		Bucket:   p.String("bucket"),
		History:  1,
		Storage:  jetstream.FileStorage,
		Replicas: kvbucket.Replicas(info),
	})
	if err != nil {
		return nil, fmt.Errorf("kv: %w", err)
	}
	s := &kvSink{kv: kv}
	s.exprs.New = func() any {
		e, _ := compileKVExprs(p) // compiled once already: cannot fail
		return e
	}
	s.exprs.Put(first)
	return s, nil
}

// kvOp is what a batch does to one key: the last record of the key wins.
type kvOp struct {
	key   string
	value []byte
	del   bool
	msgs  []int // the records of the batch that gave the key
}

// Write applies the batch, the puts concurrently. A record that cannot be
// written fails alone in a *BatchError; when any put failed with an
// outage of the server, Write returns that error for the whole batch.
func (s *kvSink) Write(ctx context.Context, batch []*stages.Message) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("kv: %w", stages.ErrSinkClosed)
	}
	errs := make([]error, len(batch))
	failed := false
	ops := make([]kvOp, 0, len(batch))
	byKey := make(map[string]int, len(batch))
	e := s.exprs.Get().(*kvExprs)
	for i, m := range batch {
		key, value, del, err := e.prepare(m)
		if err != nil {
			errs[i], failed = err, true
			continue
		}
		if j, ok := byKey[key]; ok {
			ops[j].value, ops[j].del = value, del
			ops[j].msgs = append(ops[j].msgs, i)
			continue
		}
		byKey[key] = len(ops)
		ops = append(ops, kvOp{key: key, value: value, del: del, msgs: []int{i}})
	}
	s.exprs.Put(e)

	opErrs := make([]error, len(ops))
	sem := make(chan struct{}, kvSinkInFlight)
	var wg sync.WaitGroup
	for j := range ops {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			opErrs[j] = fmt.Errorf("kv: write key %s: %w", kvbucket.QuoteKey(ops[j].key), ctx.Err())
			if connOutage(opErrs[j]) {
				opErrs[j] = stages.Outage(opErrs[j])
			}
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			opErrs[j] = s.apply(ctx, &ops[j])
		})
	}
	wg.Wait()
	for j, err := range opErrs {
		if err == nil {
			continue
		}
		failed = true
		for _, i := range ops[j].msgs {
			errs[i] = err
		}
	}
	if err := batchOutage(errs); err != nil {
		return err
	}
	if failed {
		return &stages.BatchError{Errs: errs}
	}
	return nil
}

// prepare returns the key of m and what to do with it.
func (e *kvExprs) prepare(m *stages.Message) (key string, value []byte, del bool, err error) {
	k, err := e.key.Eval(m)
	if err != nil {
		return "", nil, false, err
	}
	if key, err = kvbucket.KeyString(k); err != nil {
		return "", nil, false, stages.Permanent(fmt.Errorf("kv: %w", err))
	}
	if err := kvbucket.CheckKey(key); err != nil {
		return "", nil, false, stages.Permanent(fmt.Errorf("kv: invalid key: %w", err))
	}
	if e.del != nil {
		d, err := e.del.Eval(m)
		if err != nil {
			return "", nil, false, err
		}
		b, ok := d.(bool)
		if !ok {
			return "", nil, false, stages.Permanent(fmt.Errorf("kv: the delete expression gave a %s, want a boolean", errtext.JSONKind(d)))
		}
		if b {
			return key, nil, true, nil
		}
	}
	if e.value == nil {
		value, err = m.Payload()
		return key, value, false, err
	}
	v, err := e.value.Eval(m)
	if err != nil {
		return "", nil, false, err
	}
	if s, ok := v.(string); ok {
		return key, []byte(s), false, nil
	}
	if value, err = stages.EncodeJSON(v); err != nil {
		return "", nil, false, stages.Permanent(fmt.Errorf("kv: encode value: %w", err))
	}
	return key, value, false, nil
}

// apply puts or deletes one key.
func (s *kvSink) apply(ctx context.Context, op *kvOp) error {
	var err error
	if op.del {
		err = s.kv.Delete(ctx, op.key)
	} else {
		_, err = s.kv.Put(ctx, op.key, op.value)
	}
	if err == nil {
		return nil
	}
	err = fmt.Errorf("kv: write key %s: %w", kvbucket.QuoteKey(op.key), err)
	switch {
	case errors.Is(err, jetstream.ErrInvalidKey), errors.Is(err, nats.ErrMaxPayload), errors.Is(err, nats.ErrHeadersNotSupported):
		return stages.Permanent(err)
	case connOutage(err), errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse):
		// No answer: the bucket was deleted, or JetStream is down.
		return stages.Outage(err)
	case errors.Is(err, context.Canceled):
		return err
	}
	if api, ok := errors.AsType[*jetstream.APIError](err); ok && api != nil {
		return stages.Permanent(err) // the server refuses this value
	}
	return err
}

func (s *kvSink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
