package lb

import (
	"net/http"
	"strconv"
)

// The heads the proxy writes, appended to a byte slice so that both HTTP paths write
// the same bytes: the goroutine path appends into its bufio.Writer's free buffer
// (AvailableBuffer), the event loops into a connection's output.

// appendRequestHead appends r as it goes to backend b: HTTP/1.1 with the client's Host
// and fields but the hop-by-hop ones, its own framing, and X-Forwarded-For (appended to
// the client's, as HAProxy's forwardfor), X-Forwarded-Host and X-Forwarded-Proto
// (replacing the client's). clientIP is the client's address; isTLS whether it came
// over TLS.
func appendRequestHead(dst []byte, r *request, b *backend, clientIP string, isTLS bool) []byte {
	dst = append(dst, r.bytes(r.method)...)
	dst = append(dst, ' ')
	dst = append(dst, r.uri...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	if r.host != nil {
		dst = append(dst, r.host...)
	} else {
		dst = append(dst, b.addr...)
	}
	dst = append(dst, "\r\n"...)
	xffs := 0
	for _, f := range r.fields {
		switch f.kind {
		case fieldOther, fieldExpect, fieldCookie, fieldAuthorization, fieldAppID, fieldHSTS:
			if len(r.connTokens) > 0 && hopByHop(&r.head, r.connTokens, f) {
				continue
			}
			dst = append(dst, r.bytes(f.name)...)
			dst = append(dst, ": "...)
			dst = append(dst, r.bytes(f.value)...)
			dst = append(dst, "\r\n"...)
		case fieldXForwardedFor:
			xffs++
		}
	}
	switch {
	case r.chunked:
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	case r.contentLength >= 0:
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, r.contentLength, 10)
		dst = append(dst, "\r\n"...)
	}
	if r.upgrade != nil {
		dst = append(dst, "Connection: Upgrade\r\nUpgrade: "...)
		dst = append(dst, r.upgrade...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "X-Forwarded-For: "...)
	if xffs > 0 {
		// The client's fields, joined in order, then the client.
		for _, f := range r.fields {
			if f.kind == fieldXForwardedFor {
				dst = append(dst, r.bytes(f.value)...)
				dst = append(dst, ", "...)
			}
		}
	}
	dst = append(dst, clientIP...)
	if r.host != nil {
		dst = append(dst, "\r\nX-Forwarded-Host: "...)
		dst = append(dst, r.host...)
	}
	if isTLS {
		return append(dst, "\r\nX-Forwarded-Proto: https\r\n\r\n"...)
	}
	return append(dst, "\r\nX-Forwarded-Proto: http\r\n\r\n"...)
}

// appendStatusLine appends the response's status line as HTTP/1.1.
func appendStatusLine(dst []byte, resp *response) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = append(dst, resp.buf[9:12]...)
	dst = append(dst, ' ')
	dst = append(dst, resp.bytes(resp.target)...)
	return append(dst, "\r\n"...)
}

// appendFields appends the response's fields that go on to the client.
func appendFields(dst []byte, resp *response, hsts bool) []byte {
	for _, f := range resp.fields {
		switch f.kind {
		case fieldConnection, fieldProxyConnection, fieldKeepAlive, fieldTransferEncoding, fieldContentLength, fieldUpgrade:
			continue
		case fieldHSTS:
			// The load balancer's is the only one where it sets its own.
			if hsts {
				continue
			}
		}
		if len(resp.connTokens) > 0 && hopByHop(&resp.head, resp.connTokens, f) {
			continue
		}
		dst = append(dst, resp.bytes(f.name)...)
		dst = append(dst, ": "...)
		dst = append(dst, resp.bytes(f.value)...)
		dst = append(dst, "\r\n"...)
	}
	return dst
}

// appendInterim appends an interim (1xx) response.
func appendInterim(dst []byte, resp *response) []byte {
	dst = appendStatusLine(dst, resp)
	dst = appendFields(dst, resp, false)
	return append(dst, "\r\n"...)
}

// appendResponseHead appends the final response's head to request r. chunkedOut: the
// body goes out chunked; closeAfter: the connection must close after it (its end is the
// close).
func appendResponseHead(dst []byte, r *request, resp *response, b *backend, hsts, setCookie bool) (out []byte, chunkedOut, closeAfter bool) {
	dst = appendStatusLine(dst, resp)
	dst = appendFields(dst, resp, hsts)
	switch {
	case resp.chunked && r.minor == 1:
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
		chunkedOut = true
	case resp.chunked:
		// An HTTP/1.0 client knows no chunks: the body ends with the connection.
		closeAfter = !resp.bodyless(r.isHead())
	case resp.contentLength >= 0:
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, resp.contentLength, 10)
		dst = append(dst, "\r\n"...)
	case resp.untilClose:
		closeAfter = true
	}
	if hsts {
		dst = append(dst, hstsHeader+": "+hstsValue+"\r\n"...)
	}
	if setCookie {
		dst = append(dst, "Set-Cookie: "...)
		dst = append(dst, b.setCookie...)
		dst = append(dst, "\r\nCache-Control: no-cache=\"set-cookie\"\r\n"...)
	}
	dst = appendConnection(dst, r, closeAfter || r.close)
	return append(dst, "\r\n"...), chunkedOut, closeAfter
}

// appendConnection appends the Connection field a response to r needs: close, or
// keep-alive to an HTTP/1.0 client that asked for it.
func appendConnection(dst []byte, r *request, close bool) []byte {
	switch {
	case close:
		return append(dst, "Connection: close\r\n"...)
	case r.minor == 0:
		return append(dst, "Connection: keep-alive\r\n"...)
	}
	return dst
}

// appendLocal appends a response of the load balancer's own to r: code, extra fields
// (whole lines) and a plain text body (left out for a HEAD request).
func appendLocal(dst []byte, r *request, code int, extra, body string, close bool) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, ' ')
	dst = append(dst, http.StatusText(code)...)
	dst = append(dst, "\r\n"...)
	if body != "" {
		dst = append(dst, "Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n"...)
	}
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\n"...)
	dst = append(dst, extra...)
	dst = appendConnection(dst, r, close)
	dst = append(dst, "\r\n"...)
	if !r.isHead() {
		dst = append(dst, body...)
	}
	return dst
}
