package azdotest

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Throttle makes the server take at most Runs runs, webhook deliveries and Runs API runs
// alike, in each window of length Window, and block the rest as Azure DevOps blocks a
// client over its rate limit: 429 with Retry-After, the whole seconds until the window
// ends (at least 1), X-RateLimit-Resource, -Limit (Runs), -Remaining (0) and -Reset (the
// window's end, Unix seconds), and TF400733 in Azure's envelope (RequestBlockedException).
// Only requests the server would take count; one it refuses anyway (a bad signature, an
// unknown pipeline) is answered as without a throttle.
//
// Windows are fixed and aligned to Now (time.Now when nil): [k·Window, (k+1)·Window).
// Azure meters TSTUs, not runs, over a sliding five minutes, delays requests (up to 30 s,
// X-RateLimit-Delay) before it blocks them, and does not publish its resource names; a
// fixed window is the simplest limit that has a known capacity and a Retry-After that is
// exact, which is what a test of a client's pacing needs.
type Throttle struct {
	Runs   int
	Window time.Duration
	Now    func() time.Time
}

// ThrottleResource is the X-RateLimit-Resource of the server's 429s: Azure names the
// service and threshold there, in words that may change without warning.
const ThrottleResource = "Pipelines.Runs"

// throttleState is the count of the current window, guarded by Server.mu.
type throttleState struct {
	Throttle
	window int64 // index of the window counted
	taken  int
}

// SetThrottle sets the limit from the next request on; the zero Throttle lifts it.
func (s *Server) SetThrottle(t Throttle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = throttleState{Throttle: t}
}

// blockLocked counts a run the server is about to take and returns nil, or, when the
// window is full, the headers of Azure's 429.
func (s *Server) blockLocked() http.Header {
	t := &s.throttle
	if t.Runs <= 0 || t.Window <= 0 {
		return nil
	}
	now := time.Now()
	if t.Now != nil {
		now = t.Now()
	}
	w := now.UnixNano() / int64(t.Window)
	if w != t.window {
		t.window, t.taken = w, 0
	}
	if t.taken < t.Runs {
		t.taken++
		return nil
	}
	end := time.Unix(0, (w+1)*int64(t.Window))
	wait := max(1, int64((end.Sub(now)+time.Second-1)/time.Second))
	reset := (end.UnixNano() + int64(time.Second) - 1) / int64(time.Second)
	h := http.Header{}
	h.Set("Retry-After", strconv.FormatInt(wait, 10))
	h.Set("X-RateLimit-Resource", ThrottleResource)
	h.Set("X-RateLimit-Limit", strconv.Itoa(t.Runs))
	h.Set("X-RateLimit-Remaining", "0")
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset, 10))
	return h
}

// blockedError is Azure's envelope for a blocked request, in the documented wording.
func (s *Server) blockedError() *apiError {
	return newError("RequestBlockedException",
		"Microsoft.TeamFoundation.Framework.Server.RequestBlockedException, Microsoft.TeamFoundation.Framework.Server",
		fmt.Sprintf("TF400733: The request has been canceled: Request was blocked due to exceeding usage of resource '%s' in namespace '%s'.", ThrottleResource, s.org))
}
