package azdotest

import "net/http"

// Handler returns the server's request handler, so that a caller can wrap it (to time
// Azure's share of a round trip, say) and serve it on a listener of its own. Requests
// it handles are recorded and scripted like those sent to URL.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }
