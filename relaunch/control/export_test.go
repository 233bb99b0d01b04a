package control

import "time"

// Limits are a Server's limits, which a test may lower; a zero field keeps
// the server's own.
type Limits struct {
	MaxClients   int
	IdleTimeout  time.Duration
	WriteTimeout time.Duration
	MaxLine      int
	BackoffMin   time.Duration
	BackoffMax   time.Duration
}

// SetLimits changes s's limits; call it before Serve.
func SetLimits(s *Server, l Limits) {
	if l.MaxClients != 0 {
		s.maxClients = l.MaxClients
	}
	if l.IdleTimeout != 0 {
		s.idleTimeout = l.IdleTimeout
	}
	if l.WriteTimeout != 0 {
		s.writeTimeout = l.WriteTimeout
	}
	if l.MaxLine != 0 {
		s.maxLine = l.MaxLine
	}
	if l.BackoffMin != 0 {
		s.backoffMin = l.BackoffMin
	}
	if l.BackoffMax != 0 {
		s.backoffMax = l.BackoffMax
	}
}

// BreakListener closes s's listening socket under Serve, as a failure of
// the socket would: Serve must then return the error.
func BreakListener(s *Server) { s.ln.Close() }

// NewReplays is newReplays, for the tests of the external package.
var NewReplays = newReplays

// WriteAppPlanText is writeAppPlanText, for the tests of the external package.
var WriteAppPlanText = writeAppPlanText
