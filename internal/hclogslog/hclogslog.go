// Package hclogslog adapts a *slog.Logger to the hclog.Logger interface
// that hashicorp/raft logs through, so that raft's logs join the process's
// structured log with the same handler, level and attributes.
package hclogslog

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"time"

	"github.com/hashicorp/go-hclog"
)

// New returns an hclog.Logger writing to l.
func New(l *slog.Logger) hclog.Logger { return &adapter{l: l} }

type adapter struct {
	l       *slog.Logger
	name    string
	implied []interface{}
}

var levels = map[hclog.Level]slog.Level{
	hclog.Trace: slog.LevelDebug - 4,
	hclog.Debug: slog.LevelDebug,
	hclog.Info:  slog.LevelInfo,
	hclog.Warn:  slog.LevelWarn,
	hclog.Error: slog.LevelError,
}

func toSlog(level hclog.Level) slog.Level {
	if l, ok := levels[level]; ok {
		return l
	}
	return slog.LevelInfo
}

func (a *adapter) Log(level hclog.Level, msg string, args ...interface{}) {
	if level == hclog.Off {
		return
	}
	a.l.Log(context.Background(), toSlog(level), msg, convertArgs(args)...)
}

// convertArgs turns hclog's special values into what slog prints well:
// hclog.Format into its formatted string, and structs that would encode as
// {} in JSON into their %v text.
func convertArgs(args []interface{}) []interface{} {
	out := make([]interface{}, len(args))
	for i, v := range args {
		switch x := v.(type) {
		case hclog.Format:
			if len(x) > 0 {
				if f, ok := x[0].(string); ok {
					v = fmt.Sprintf(f, x[1:]...)
				}
			}
		case string, bool, int, int64, uint64, uint32, int32, float64, error, time.Duration, time.Time, nil:
		case fmt.Stringer:
			v = x.String()
		default:
			if i%2 == 1 { // a value, not a key
				v = fmt.Sprintf("%+v", x)
			}
		}
		out[i] = v
	}
	return out
}

func (a *adapter) Trace(msg string, args ...interface{}) { a.Log(hclog.Trace, msg, args...) }
func (a *adapter) Debug(msg string, args ...interface{}) { a.Log(hclog.Debug, msg, args...) }
func (a *adapter) Info(msg string, args ...interface{})  { a.Log(hclog.Info, msg, args...) }
func (a *adapter) Warn(msg string, args ...interface{})  { a.Log(hclog.Warn, msg, args...) }
func (a *adapter) Error(msg string, args ...interface{}) { a.Log(hclog.Error, msg, args...) }

func (a *adapter) enabled(level hclog.Level) bool {
	return a.l.Enabled(context.Background(), toSlog(level))
}

func (a *adapter) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *adapter) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *adapter) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *adapter) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *adapter) IsError() bool { return a.enabled(hclog.Error) }

func (a *adapter) ImpliedArgs() []interface{} { return a.implied }

func (a *adapter) With(args ...interface{}) hclog.Logger {
	return &adapter{l: a.l.With(args...), name: a.name, implied: append(append([]interface{}(nil), a.implied...), args...)}
}

func (a *adapter) Name() string { return a.name }

func (a *adapter) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	return a.ResetNamed(name)
}

func (a *adapter) ResetNamed(name string) hclog.Logger {
	return &adapter{l: a.l.With("logger", name), name: name, implied: a.implied}
}

// SetLevel is ignored: the slog handler owns the level.
func (a *adapter) SetLevel(hclog.Level) {}

func (a *adapter) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if a.enabled(l) {
			return l
		}
	}
	return hclog.Off
}

func (a *adapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(a.l.Handler(), slog.LevelInfo)
}

func (a *adapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return slog.NewLogLogger(a.l.Handler(), slog.LevelInfo).Writer()
}
