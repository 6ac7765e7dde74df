package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Order is the record every scenario carries: about 220 bytes of JSON.
// The baseline and the Go transform decode into it and encode it again.
type Order struct {
	ID       int64   `json:"id"`
	Customer string  `json:"customer"`
	Country  string  `json:"country"`
	Amount   float64 `json:"amount"`
	Currency string  `json:"currency"`
	Items    int     `json:"items"`
	Status   string  `json:"status"`
	Note     string  `json:"note"`
	PlacedAt string  `json:"placed_at"`
}

// dataSeed makes the data set the same in every run and on every machine.
const dataSeed = 20261124

var (
	countries  = []string{"DE", "FR", "NL", "IT", "ES", "PL", "SE", "AT"}
	currencies = []string{"EUR", "EUR", "EUR", "SEK", "PLN"}
	statuses   = []string{"new", "paid", "packed", "pending"}
	noteWords  = []string{"deliver", "to", "the", "back", "door", "please", "call", "before", "arrival",
		"gift", "wrap", "fragile", "leave", "with", "neighbour", "ring", "twice", "no", "invoice"}
)

// Dataset is the generated records, each encoded once with encoding/json.
// Every scenario publishes the same bytes.
type Dataset struct {
	Records   [][]byte
	MeanBytes float64
}

// NewDataset generates n orders deterministically. The note is padded or
// cut to 60 bytes, so that records are about 220 bytes.
func NewDataset(n int) (*Dataset, error) {
	return newOrders(n, orderShape{stream: 0, noteBytes: 60, maxCents: 1_000_000})
}

// orderShape is what varies between generated data sets: the random
// stream of the seed, the note's length and the amounts' bound.
type orderShape struct {
	stream    uint64
	noteBytes int
	maxCents  int
}

// newOrders generates n orders of shape sh deterministically.
func newOrders(n int, sh orderShape) (*Dataset, error) {
	rng := rand.New(rand.NewPCG(dataSeed, sh.stream))
	placed := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	ds := &Dataset{Records: make([][]byte, n)}
	total := 0
	var note strings.Builder
	for i := range n {
		note.Reset()
		for note.Len() < sh.noteBytes {
			if note.Len() > 0 {
				note.WriteByte(' ')
			}
			note.WriteString(noteWords[rng.IntN(len(noteWords))])
		}
		o := Order{
			ID:       int64(i + 1),
			Customer: fmt.Sprintf("customer-%05d", rng.IntN(50_000)),
			Country:  countries[rng.IntN(len(countries))],
			Amount:   float64(rng.IntN(sh.maxCents)) / 100,
			Currency: currencies[rng.IntN(len(currencies))],
			Items:    1 + rng.IntN(9),
			Status:   statuses[rng.IntN(len(statuses))],
			Note:     note.String()[:sh.noteBytes],
			PlacedAt: placed.Add(time.Duration(i) * 1500 * time.Millisecond).Format(time.RFC3339),
		}
		b, err := json.Marshal(&o)
		if err != nil {
			return nil, fmt.Errorf("encode record %d: %w", i, err)
		}
		ds.Records[i] = b
		total += len(b)
	}
	if n > 0 {
		ds.MeanBytes = float64(total) / float64(n)
	}
	return ds, nil
}

// first returns the first n records.
func (d *Dataset) first(n int) [][]byte { return d.Records[:n] }
