package api

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestRecordReader(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr error
	}{
		{"two records", "5\nhello3\nabc", []string{"hello", "abc"}, io.EOF},
		{"empty stream", "", nil, io.EOF},
		{"cut in length", "12", nil, io.ErrUnexpectedEOF},
		{"cut in body", "5\nhel", nil, io.ErrUnexpectedEOF},
		{"too large", "999999999999\n", nil, ErrRecordTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := NewRecordReader(strings.NewReader(tt.in))
			var got []string
			var err error
			for {
				var rec []byte
				rec, err = rr.ReadRecord()
				if err != nil {
					break
				}
				got = append(got, string(rec))
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("records = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRecordReaderRejectsGarbage(t *testing.T) {
	for _, in := range []string{"x\n", "\nabc", "0\n", "-1\nabc"} {
		if _, err := NewRecordReader(strings.NewReader(in)).ReadRecord(); err == nil || err == io.EOF {
			t.Errorf("%q: err = %v, want a framing error", in, err)
		}
	}
}

func FuzzRecordReader(f *testing.F) {
	f.Add([]byte("5\nhello3\nabc"))
	f.Add([]byte("0\n"))
	f.Add([]byte("99999999\nx"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rr := NewRecordReader(bytes.NewReader(data))
		rr.SetLimit(1 << 16)
		var out []byte
		var recs [][]byte
		for {
			rec, err := rr.ReadRecord()
			if err != nil {
				break
			}
			if len(rec) == 0 || len(rec) > 1<<16 {
				t.Fatalf("record of %d bytes", len(rec))
			}
			recs = append(recs, rec)
			out = AppendRecord(out, rec)
		}
		// Whatever was read re-frames and reads back the same.
		back := NewRecordReader(bytes.NewReader(out))
		for i, want := range recs {
			got, err := back.ReadRecord()
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("record %d read back as %q, %v; want %q", i, got, err, want)
			}
		}
		if _, err := back.ReadRecord(); err != io.EOF {
			t.Fatalf("after the records: %v, want EOF", err)
		}
	})
}
