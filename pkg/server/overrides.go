package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/weir-lb/weir/pkg/lb"
)

// RuntimeStateVersion is the version of the serialised runtime state that
// RuntimeState writes and Restore reads.
const RuntimeStateVersion = 1

// maxRuntimeStateBytes bounds the state Restore reads (pkg/upgrade's
// MaxStateBytes bounds what travels; the two agree).
const maxRuntimeStateBytes = 4 << 20

// ErrRuntimeState is returned by Restore for a state it cannot read.
var ErrRuntimeState = errors.New("unreadable runtime state")

// runtimeState is what a process hands its successor: the operator's
// runtime overrides and the health verdicts of every service.
type runtimeState struct {
	Version  int            `json:"version"`
	Services []serviceState `json:"services"`
}

// serviceState is one service's part of the runtime state.
type serviceState struct {
	Name string `json:"name"`
	// Drained lists the backends an operator drained; Weights the
	// weights an operator set, by address.
	Drained []string       `json:"drained,omitempty"`
	Weights map[string]int `json:"weights,omitempty"`
	// Added lists the backends an operator added to a static list, and
	// Removed the configured ones an operator removed.
	Added   []addedBackend `json:"added,omitempty"`
	Removed []string       `json:"removed,omitempty"`
	// Health is the last verdict on each backend checked at least once.
	Health map[string]bool `json:"health,omitempty"`
}

// addedBackend is a backend an operator added.
type addedBackend struct {
	Addr   string `json:"addr"`
	Weight int    `json:"weight"`
}

// RuntimeState serialises what this process knows that its
// configuration does not: every runtime override made through the admin
// API (drains, weights, backends added to or removed from static lists)
// and every backend's current health verdict, as versioned JSON. An
// upgrade hands it to the successor, whose Restore applies it.
func (s *Server) RuntimeState() ([]byte, error) {
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	rs := runtimeState{Version: RuntimeStateVersion, Services: []serviceState{}}
	for _, t := range s.targets() {
		if t.lb == nil {
			continue
		}
		ss, err := s.serviceState(t)
		if err != nil {
			return nil, err
		}
		rs.Services = append(rs.Services, ss)
	}
	return json.Marshal(rs)
}

func (s *Server) serviceState(t target) (serviceState, error) {
	ss := serviceState{Name: t.cfg.Name}
	for addr, o := range t.lb.Overrides() {
		if o.Drained {
			ss.Drained = append(ss.Drained, addr)
		}
		if o.Weight != 0 {
			if ss.Weights == nil {
				ss.Weights = map[string]int{}
			}
			ss.Weights[addr] = o.Weight
		}
	}
	slices.Sort(ss.Drained)
	for _, st := range t.lb.Status() {
		if st.LastCheck.IsZero() {
			continue // its health is a guess, not a verdict
		}
		if ss.Health == nil {
			ss.Health = map[string]bool{}
		}
		ss.Health[st.Backend.Addr] = st.Healthy
	}
	if static := t.static(); static != nil {
		set, err := static.Discover(context.Background())
		if err != nil {
			return ss, fmt.Errorf("service %q: read its backend list: %w", t.cfg.Name, err)
		}
		listed := map[string]bool{}
		for _, b := range set.Backends {
			listed[b.Addr] = true
		}
		configured := map[string]bool{}
		for _, bs := range t.cfg.Upstream.Backends {
			configured[bs.Addr] = true
			if !listed[bs.Addr] {
				ss.Removed = append(ss.Removed, bs.Addr)
			}
		}
		for _, b := range set.Backends {
			if !configured[b.Addr] {
				ss.Added = append(ss.Added, addedBackend{Addr: b.Addr, Weight: b.Weight})
			}
		}
	}
	return ss, nil
}

// Restore applies the runtime state a predecessor's RuntimeState wrote,
// before Serve: the overrides are applied as the load balancers are
// about to make their first update, and each backend starts with its
// predecessor's health verdict (lb.Seed) until its own first check.
//
// What this configuration makes meaningless is dropped, each with an
// Info line: the state of a service it no longer has; a backend added
// to a service that no longer exists or is no longer static; a drain or
// weight of a backend its static list no longer holds. A service
// discovered through DNS keeps its overrides, which apply whenever the
// address is discovered. Restore fails, changing nothing, only when the
// state is not one it can read (ErrRuntimeState).
func (s *Server) Restore(state []byte) error {
	if len(state) == 0 {
		return nil
	}
	rs, err := decodeRuntimeState(state)
	if err != nil {
		return err
	}
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	for i := range rs.Services {
		s.restoreService(&rs.Services[i])
	}
	return nil
}

// decodeRuntimeState parses a runtime state strictly and checks its
// version and bounds.
func decodeRuntimeState(state []byte) (runtimeState, error) {
	if len(state) > maxRuntimeStateBytes {
		return runtimeState{}, fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrRuntimeState, len(state), maxRuntimeStateBytes)
	}
	var version struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(state, &version); err != nil {
		return runtimeState{}, fmt.Errorf("%w: %w", ErrRuntimeState, err)
	}
	if version.Version != RuntimeStateVersion {
		return runtimeState{}, fmt.Errorf("%w: version %d, and this weir reads version %d; upgrade through a release that reads both",
			ErrRuntimeState, version.Version, RuntimeStateVersion)
	}
	var rs runtimeState
	dec := json.NewDecoder(bytes.NewReader(state))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rs); err != nil {
		return runtimeState{}, fmt.Errorf("%w: %w", ErrRuntimeState, err)
	}
	return rs, nil
}

// restoreService applies one service's state, dropping with an Info line
// what no longer applies. Call with ctl.mu held.
func (s *Server) restoreService(ss *serviceState) {
	log := s.log.With("service", ss.Name)
	t, err := s.target(ss.Name)
	if err == nil && t.lb == nil {
		err = errors.New("it has no backends any more")
	}
	if err != nil {
		log.Info("runtime overrides dropped: the service is no longer configured with backends",
			"drained", ss.Drained, "weights", ss.Weights, "added", ss.Added, "removed", ss.Removed)
		return
	}
	static := t.static()
	if static == nil && (len(ss.Added) > 0 || len(ss.Removed) > 0) {
		log.Info("runtime backend changes dropped: the service no longer has static backends",
			"added", ss.Added, "removed", ss.Removed)
	}
	if static != nil {
		restoreList(t, static, ss, log)
	}
	// Only the addresses the new list holds; a DNS service keeps all.
	listed := func(addr string) bool { return true }
	if static != nil {
		set, err := static.Discover(context.Background())
		if err != nil {
			log.Info("runtime overrides dropped: the backend list is unreadable", "err", err)
			return
		}
		in := map[string]bool{}
		for _, b := range set.Backends {
			in[b.Addr] = true
		}
		listed = func(addr string) bool { return in[addr] }
	}
	for _, addr := range ss.Drained {
		if !listed(addr) {
			log.Info("runtime drain dropped: the configuration no longer lists the backend", "backend", addr)
			continue
		}
		if err := t.lb.SetDrained(addr, true); err != nil {
			log.Info("runtime drain dropped", "backend", addr, "err", err)
		}
	}
	for _, addr := range slices.Sorted(maps.Keys(ss.Weights)) {
		if !listed(addr) {
			log.Info("runtime weight dropped: the configuration no longer lists the backend", "backend", addr, "weight", ss.Weights[addr])
			continue
		}
		if err := checkWeight(ss.Weights[addr]); err != nil {
			log.Info("runtime weight dropped", "backend", addr, "err", err)
			continue
		}
		if err := t.lb.SetWeight(addr, ss.Weights[addr]); err != nil {
			log.Info("runtime weight dropped", "backend", addr, "err", err)
		}
	}
	for _, addr := range slices.Sorted(maps.Keys(ss.Health)) {
		if listed(addr) {
			_ = t.lb.Seed(addr, ss.Health[addr]) // a malformed address seeds nothing
		}
	}
}

// restoreList replays an operator's additions to and removals from a
// static list.
func restoreList(t target, static *lb.Static, ss *serviceState, log interface{ Info(string, ...any) }) {
	for _, addr := range ss.Removed {
		// A backend the new list does not hold is removed already.
		if err := static.Remove(addr); err != nil && !errors.Is(err, lb.ErrUnknownBackend) {
			log.Info("runtime removal dropped", "backend", addr, "err", err)
		}
	}
	for _, a := range ss.Added {
		addr, err := parseBackend(t, a.Addr)
		if err == nil {
			err = checkWeight(a.Weight)
		}
		if err == nil {
			err = static.Add(lb.Backend{Addr: addr, Weight: a.Weight})
		}
		switch {
		case errors.Is(err, lb.ErrDuplicate):
			log.Info("runtime addition dropped: the configuration lists the backend now, with its own weight", "backend", a.Addr)
		case err != nil:
			log.Info("runtime addition dropped", "backend", a.Addr, "err", err)
		}
	}
}
