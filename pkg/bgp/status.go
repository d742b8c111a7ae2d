package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// SessionState is a BGP session's state in the RFC 4271 finite state
// machine.
type SessionState int

// The session states, in the order a session passes through them.
const (
	StateUnknown SessionState = iota
	StateIdle
	StateConnect
	StateActive
	StateOpenSent
	StateOpenConfirm
	StateEstablished
)

var stateNames = [...]string{"unknown", "idle", "connect", "active", "opensent", "openconfirm", "established"}

// String returns the state's name in lower case, as "established".
func (s SessionState) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("SessionState(%d)", int(s))
	}
	return stateNames[s]
}

func stateFromFSM(s bgp.FSMState) SessionState {
	switch s {
	case bgp.BGP_FSM_IDLE:
		return StateIdle
	case bgp.BGP_FSM_CONNECT:
		return StateConnect
	case bgp.BGP_FSM_ACTIVE:
		return StateActive
	case bgp.BGP_FSM_OPENSENT:
		return StateOpenSent
	case bgp.BGP_FSM_OPENCONFIRM:
		return StateOpenConfirm
	case bgp.BGP_FSM_ESTABLISHED:
		return StateEstablished
	}
	return StateUnknown
}

func stateFromAPI(s api.PeerState_SessionState) SessionState {
	switch s {
	case api.PeerState_SESSION_STATE_IDLE:
		return StateIdle
	case api.PeerState_SESSION_STATE_CONNECT:
		return StateConnect
	case api.PeerState_SESSION_STATE_ACTIVE:
		return StateActive
	case api.PeerState_SESSION_STATE_OPENSENT:
		return StateOpenSent
	case api.PeerState_SESSION_STATE_OPENCONFIRM:
		return StateOpenConfirm
	case api.PeerState_SESSION_STATE_ESTABLISHED:
		return StateEstablished
	}
	return StateUnknown
}

// PeerStatus is a snapshot of one session.
type PeerStatus struct {
	Address netip.Addr
	ASN     uint32
	State   SessionState
	// Uptime is how long the session has been established (zero unless
	// State is StateEstablished; whole seconds).
	Uptime time.Duration
	// Announced are the prefixes this peer has been sent and not sent a
	// withdraw for (GoBGP's Adj-RIB-Out), sorted: empty unless the
	// session is established, and only prefixes of the session's family.
	Announced []netip.Prefix
}

// Stats is a snapshot of the speaker's counters and sessions, for a
// server to publish.
type Stats struct {
	// Announces and Withdraws count the route changes since New: an
	// Announce that changed a route, a Withdraw that removed one
	// (Shutdown's included). Idempotent repeats are not counted.
	Announces, Withdraws uint64
	// Announced is the number of routes announced now.
	Announced int
	// Peers is every session's state, in configuration order.
	Peers []PeerStatus
}

// Peers returns every session's state, in configuration order. Before
// Start and after Stop every session is idle.
func (s *Speaker) Peers() []PeerStatus {
	s.mu.Lock()
	srv := s.server
	s.mu.Unlock()
	out := make([]PeerStatus, len(s.cfg.Peers))
	index := make(map[netip.Addr]int, len(s.cfg.Peers))
	for i, p := range s.cfg.Peers {
		out[i] = PeerStatus{Address: p.Address, ASN: p.ASN, State: StateIdle}
		index[p.Address.Unmap()] = i
	}
	if srv == nil {
		return out
	}
	now := time.Now()
	// ListPeer fails only once the server has stopped, when every
	// session is idle, as out already says.
	_ = srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		addr, err := netip.ParseAddr(p.GetConf().GetNeighborAddress())
		if err != nil {
			return
		}
		i, ok := index[addr.Unmap()]
		if !ok {
			return
		}
		out[i].State = stateFromAPI(p.GetState().GetSessionState())
		if up := p.GetTimers().GetState().GetUptime(); out[i].State == StateEstablished && up != nil {
			out[i].Uptime = max(now.Sub(up.AsTime()).Truncate(time.Second), 0)
		}
	})
	for i := range out {
		if out[i].State == StateEstablished {
			out[i].Announced = adjRIBOut(srv, out[i].Address.Unmap())
		}
	}
	return out
}

// adjRIBOut lists the prefixes GoBGP has sent peer and not withdrawn.
func adjRIBOut(srv *server.BgpServer, peer netip.Addr) []netip.Prefix {
	family := bgp.RF_IPv4_UC
	if peer.Is6() {
		family = bgp.RF_IPv6_UC
	}
	var out []netip.Prefix
	req := apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_ADJ_OUT, Name: peer.String(), Family: family}
	// An error means the session has just gone down: nothing is sent.
	_ = srv.ListPath(req, func(nlri bgp.NLRI, _ []*apiutil.Path) {
		if p, ok := nlri.(*bgp.IPAddrPrefix); ok {
			out = append(out, p.Prefix)
		}
	})
	slices.SortFunc(out, comparePrefix)
	return out
}

// Stats returns the speaker's counters and sessions.
func (s *Speaker) Stats() Stats {
	peers := s.Peers()
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Announces: s.counts.announces,
		Withdraws: s.counts.withdraws,
		Announced: len(s.routes),
		Peers:     slices.Clip(peers),
	}
}
