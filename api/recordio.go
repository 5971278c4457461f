package api

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// RecordIO frames each record as "<decimal length>\n<bytes>", as Mesos streams do.

// MaxRecordSize bounds one record; a length above it is an error, not an allocation.
const MaxRecordSize = 64 << 20

// ErrRecordTooLarge is returned for a record longer than the reader's limit.
var ErrRecordTooLarge = errors.New("recordio: record too large")

// RecordReader reads RecordIO records.
type RecordReader struct {
	r   *bufio.Reader
	max int
}

// NewRecordReader reads records of at most MaxRecordSize bytes from r.
func NewRecordReader(r io.Reader) *RecordReader {
	return &RecordReader{r: bufio.NewReaderSize(r, 64<<10), max: MaxRecordSize}
}

// SetLimit changes the largest record accepted.
func (rr *RecordReader) SetLimit(n int) { rr.max = n }

// ReadRecord returns the next record. It returns io.EOF only at a clean record boundary
// and io.ErrUnexpectedEOF for a stream cut inside a record.
func (rr *RecordReader) ReadRecord() ([]byte, error) {
	var n int
	digits, maxDigits := 0, len(strconv.Itoa(rr.max))
	for {
		b, err := rr.r.ReadByte()
		if err != nil {
			if err == io.EOF && digits > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if b == '\n' {
			break
		}
		if b < '0' || b > '9' {
			return nil, fmt.Errorf("recordio: invalid length byte %q", b)
		}
		digits++
		if digits > maxDigits {
			return nil, ErrRecordTooLarge
		}
		n = n*10 + int(b-'0')
	}
	if digits == 0 {
		return nil, errors.New("recordio: empty length")
	}
	if n > rr.max {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrRecordTooLarge, n, rr.max)
	}
	if n == 0 {
		return nil, errors.New("recordio: zero-length record")
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(rr.r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// AppendRecord appends record rec, framed, to dst.
func AppendRecord(dst, rec []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(rec)), 10)
	dst = append(dst, '\n')
	return append(dst, rec...)
}
