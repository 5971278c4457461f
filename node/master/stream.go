package master

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"

	"github.com/atoll/atoll/api"
)

// errSlowConsumer closes a stream whose reader fell too far behind.
var errSlowConsumer = errors.New("stream reader too slow: too many events queued")

// maxQueuedRecords bounds what one stream may have queued before it is closed; a reader
// that far behind reconnects and resyncs rather than making the master buffer without end.
const maxQueuedRecords = 100_000

// stream is one RecordIO response: events are framed once by the sender and queued, and a
// writer goroutine (serve) drains the queue into the HTTP response, flushing after each
// batch. Sending never blocks the master. Safe for concurrent use.
type stream struct {
	id string

	mu     sync.Mutex
	queue  [][]byte
	wake   chan struct{}
	closed bool
	err    error
	done   chan struct{}
}

func newStream(id string) *stream {
	return &stream{id: id, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// sendJSON frames v and queues it; it reports false when the stream is closed.
func (s *stream) sendJSON(v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		// Our own event types always marshal; a failure here is a programming error that
		// must not take the master down, so the stream ends with the reason.
		s.close(err)
		return false
	}
	return s.sendRecord(api.AppendRecord(nil, b))
}

// sendRecord queues an already framed record (shared between subscribers; never mutated).
func (s *stream) sendRecord(rec []byte) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	if len(s.queue) >= maxQueuedRecords {
		s.mu.Unlock()
		s.close(errSlowConsumer)
		return false
	}
	s.queue = append(s.queue, rec)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return true
}

// close ends the stream; serve returns. The first reason wins.
func (s *stream) close(reason error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed, s.err = true, reason
	close(s.done)
}

// serve writes queued records to w until the stream is closed or ctx (the request) ends.
func (s *stream) serve(ctx context.Context, w http.ResponseWriter) error {
	flusher, _ := w.(http.Flusher)
	for {
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		closed := s.closed
		s.mu.Unlock()
		for _, rec := range batch {
			if _, err := w.Write(rec); err != nil {
				s.close(err)
				return err
			}
		}
		if len(batch) > 0 && flusher != nil {
			flusher.Flush()
		}
		if closed {
			return s.err
		}
		select {
		case <-s.wake:
		case <-s.done:
		case <-ctx.Done():
			s.close(ctx.Err())
			return ctx.Err()
		}
	}
}
