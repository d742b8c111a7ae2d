package bgp

import (
	"context"
	"log/slog"
)

// gobgpLogLevel is the least level of GoBGP's own messages that reach the
// speaker's logger: its Info and Debug messages repeat, per message and
// per timer, the session state changes this package logs itself.
const gobgpLogLevel = slog.LevelWarn

// levelHandler passes on the records of at least level min.Level().
type levelHandler struct {
	slog.Handler
	min *slog.LevelVar
}

func (h levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min.Level() && h.Handler.Enabled(ctx, l)
}

func (h levelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelHandler{h.Handler.WithAttrs(attrs), h.min}
}

func (h levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{h.Handler.WithGroup(name), h.min}
}

// gobgpLogger returns the logger GoBGP writes to, and the level variable
// GoBGP may change: logger's records of gobgpLogLevel and above, marked
// component=gobgp.
func gobgpLogger(logger *slog.Logger) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.Set(gobgpLogLevel)
	return slog.New(levelHandler{logger.Handler(), level}).With("component", "gobgp"), level
}
