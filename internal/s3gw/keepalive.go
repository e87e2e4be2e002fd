package s3gw

import (
	"encoding/xml"
	"io"
	"net/http"
	"time"
)

// A copy re-encodes its source: gigabytes take a while, and clients give up
// on an answer that has not begun within their read timeout (a minute for
// botocore). S3 answers such a request at once with 200 and keeps the
// connection alive with whitespace until it knows the outcome, then sends
// the result document, or an error document within the 200 (which the
// SDKs look for in CopyObject, UploadPartCopy and CompleteMultipartUpload
// answers). The gateway does the same for copies that take longer than
// keepAliveAfter.

// Default keep-alive timing: the 200 after this long, whitespace as often
// after it.
const (
	defaultKeepAliveAfter = 2 * time.Second
	keepAliveEvery        = time.Second
)

// keepAlive sends a slow request's 200 and whitespace until end.
type keepAlive struct {
	w    *response
	stop chan struct{}
	done chan struct{}
}

// startKeepAlive starts the timer of a slow request's keep-alive.
func (g *Gateway) startKeepAlive(w *response) *keepAlive {
	k := &keepAlive{w: w, stop: make(chan struct{}), done: make(chan struct{})}
	after := time.Duration(g.keepAliveAfter.Load())
	go k.run(after)
	return k
}

func (k *keepAlive) run(after time.Duration) {
	defer close(k.done)
	t := time.NewTimer(after)
	defer t.Stop()
	select {
	case <-k.stop:
		return
	case <-t.C:
	}
	w := k.w
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, xml.Header)
	w.keptAlive = true
	flush(w)
	tick := time.NewTicker(keepAliveEvery)
	defer tick.Stop()
	for {
		select {
		case <-k.stop:
			return
		case <-tick.C:
			io.WriteString(w, " ")
			flush(w)
		}
	}
}

// end stops the keep-alive; the response is the caller's again (with 200
// and the XML declaration sent if w.keptAlive).
func (k *keepAlive) end() {
	close(k.stop)
	<-k.done
}

func flush(w *response) {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
