package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// serverFlags are the flags every server command (meta, storage, dev)
// shares: logging and the optional HTTP endpoint for metrics and pprof.
type serverFlags struct {
	http      string
	logLevel  string
	logFormat string
}

func (o *serverFlags) AddFlags(cmd *cobra.Command, defaultLevel string) {
	f := cmd.Flags()
	f.StringVar(&o.http, "http", "", "serve Prometheus /metrics and /debug/pprof/ on this address (empty: off)")
	f.StringVar(&o.logLevel, "log-level", defaultLevel, "debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "", "text or json (default: text on a terminal, json otherwise)")
}

// logger builds the process logger on w.
func (o *serverFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)
	}
	format := o.logFormat
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "text"
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", o.logFormat)
}

// registry returns a metrics registry with the Go and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// serveHTTP starts the metrics and pprof endpoint if --http is set; the
// returned function stops it. Errors of the server go to errc.
func (o *serverFlags) serveHTTP(reg *prometheus.Registry, log *slog.Logger, errc chan<- error) (func(), error) {
	if o.http == "" {
		return func() {}, nil
	}
	lis, err := net.Listen("tcp", o.http)
	if err != nil {
		return nil, fmt.Errorf("--http %s: %w", o.http, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http server: %w", err)
		}
	}()
	log.Info("serving metrics and pprof", "addr", lis.Addr().String())
	return func() { srv.Close() }, nil
}
