package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestHandlerTransport(t *testing.T) {
	canceled := make(chan error, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Query", r.URL.Query().Get("q"))
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(r.Method + " " + r.RequestURI + " " + string(body)))
	})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; ; i++ {
			if _, err := w.Write([]byte{'a' + byte(i%26)}); err != nil {
				break
			}
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done()
		canceled <- r.Context().Err()
	})
	mux.HandleFunc("GET /silent", func(http.ResponseWriter, *http.Request) {})
	client := &http.Client{Transport: HandlerTransport(mux)}

	resp, err := client.Post("http://in-process/echo?q=1", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.Status != "201 Created" || resp.Header.Get("X-Query") != "1" || string(body) != "POST /echo?q=1 hello" {
		t.Errorf("echo: %s %v %q", resp.Status, resp.Header, body)
	}

	resp, err = client.Get("http://in-process/silent")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Errorf("a handler writing nothing answered %s %q, want 200 and no body", resp.Status, body)
	}

	resp, err = client.Get("http://in-process/nowhere")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path answered %s", resp.Status)
	}

	// A stream is readable while the handler runs, and closing it ends the handler.
	resp, err = client.Get("http://in-process/stream")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 30)
	if _, err := io.ReadFull(resp.Body, got); err != nil || string(got) != "abcdefghijklmnopqrstuvwxyzabcd" {
		t.Errorf("stream read %q, %v", got, err)
	}
	resp.Body.Close()
	select {
	case err := <-canceled:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("handler's context ended with %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("closing the body did not cancel the handler")
	}

	// A request whose context ends before the handler answers fails with that error.
	block := make(chan struct{})
	defer close(block)
	mux.HandleFunc("GET /block", func(http.ResponseWriter, *http.Request) { <-block })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://in-process/block", nil)
	if _, err := client.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("blocked request: %v, want context.DeadlineExceeded", err)
	}
}
