package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// HandlerTransport is an http.RoundTripper that serves each request with h in the same
// process, without a socket: the built-in frameworks reach the master's scheduler API
// through it, by the same handlers and the same encoding as external frameworks.
// Responses stream: the body is readable as soon as the handler writes, so long-lived
// event streams work, and closing the body cancels the handler's request context.
func HandlerTransport(h http.Handler) http.RoundTripper {
	return handlerTransport{h}
}

type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	body, bodyW := io.Pipe()
	w := &pipeResponseWriter{header: http.Header{}, body: bodyW, ready: make(chan struct{})}
	served := req.Clone(ctx)
	if served.Body == nil {
		served.Body = http.NoBody
	}
	served.RemoteAddr = "in-process"
	served.RequestURI = req.URL.RequestURI()
	go func() {
		defer func() {
			w.writeHeader(http.StatusOK)
			bodyW.Close()
		}()
		t.h.ServeHTTP(w, served)
	}()
	select {
	case <-w.ready:
	case <-req.Context().Done():
		cancel()
		body.CloseWithError(req.Context().Err())
		return nil, req.Context().Err()
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.sent,
		Body:          &cancelOnClose{ReadCloser: body, cancel: cancel},
		ContentLength: -1,
		Request:       req,
	}, nil
}

// pipeResponseWriter hands the handler's response to RoundTrip: the header once written,
// the body through a pipe. Writes block until the client reads them.
type pipeResponseWriter struct {
	header http.Header
	body   *io.PipeWriter

	once   sync.Once
	ready  chan struct{}
	status int
	// sent is the header as it was when the status was written.
	sent http.Header
}

func (w *pipeResponseWriter) Header() http.Header { return w.header }

func (w *pipeResponseWriter) WriteHeader(status int) { w.writeHeader(status) }

func (w *pipeResponseWriter) writeHeader(status int) {
	w.once.Do(func() {
		w.status, w.sent = status, w.header.Clone()
		close(w.ready)
	})
}

func (w *pipeResponseWriter) Write(p []byte) (int, error) {
	w.writeHeader(http.StatusOK)
	return w.body.Write(p)
}

// Flush does nothing: every write already reaches the reader.
func (w *pipeResponseWriter) Flush() {}

// cancelOnClose cancels the handler's request when the client closes the body.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	c.cancel()
	return c.ReadCloser.Close()
}
