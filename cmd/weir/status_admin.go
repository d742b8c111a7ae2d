package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/weir-lb/weir/pkg/admin"
	"github.com/weir-lb/weir/pkg/config"
)

// adminStatusTimeout bounds the whole request to the admin endpoint.
const adminStatusTimeout = 5 * time.Second

// maxAdminStatusBytes bounds the status read: a status of thousands of
// backends is a few MiB.
const maxAdminStatusBytes = 16 << 20

// adminTarget is how -admin names a configured admin listener.
func adminTarget(l config.AdminListen) string {
	if l.Network == "unix" {
		return "unix:" + l.Addr
	}
	return l.Addr
}

// fetchAdminStatus GETs /status from the admin endpoint at target
// (host:port or unix:/path), with the bearer token in tokenFile when set.
func fetchAdminStatus(target, tokenFile string) (admin.Status, error) {
	var st admin.Status
	network, addr := "tcp", target
	if path, ok := strings.CutPrefix(target, "unix:"); ok {
		network, addr = "unix", path
	}
	tr := &http.Transport{Proxy: nil, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return new(net.Dialer).DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	host := addr
	if network == "unix" {
		host = "weir-admin"
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminStatusTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/status", nil)
	if err != nil {
		return st, fmt.Errorf("admin endpoint %s: %w", target, err)
	}
	req.Header.Set("Accept", "application/json")
	if tokenFile != "" {
		token, err := config.ReadFile(tokenFile, "admin token")
		if err != nil {
			return st, fmt.Errorf("admin token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return st, fmt.Errorf("read the status from the admin endpoint %s (is weir running with admin.listen there?): %w", target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminStatusBytes+1))
	if err != nil {
		return st, fmt.Errorf("admin endpoint %s: %w", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("admin endpoint %s answered %s: %s", target, resp.Status, strings.TrimSpace(string(body[:min(len(body), 512)])))
	}
	if len(body) > maxAdminStatusBytes {
		return st, fmt.Errorf("admin endpoint %s: the status is larger than %d bytes", target, maxAdminStatusBytes)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("admin endpoint %s: the status is not weir's JSON: %w", target, err)
	}
	return st, nil
}

// printAdminStatus prints every service and backend in one table, L7 and
// L4 alike.
func printAdminStatus(w io.Writer, st admin.Status) {
	fmt.Fprintf(w, "weir %s pid %d, serving since %s\n", st.Version, st.PID, st.Started.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintln(tw, "SERVICE\tKIND\tBACKEND\tWEIGHT\tSTATE\tIN FLIGHT\tREQ/S\tERR/S\tL4 PACKETS\tL4 BYTES\tL4 FLOWS\tLAST CHECK")
	for _, s := range st.Services {
		kind := s.Kind
		if s.DataPlane != "" {
			kind += "/" + s.DataPlane
			if s.Generation != 0 {
				kind += fmt.Sprintf(" gen %d", s.Generation)
			}
		}
		p, b, f := l4Cells(s.L4)
		fmt.Fprintf(tw, "%s\t%s\t%s\t\t%s\t%s\t%.1f\t%.1f\t%s\t%s\t%s\t\n", s.Name, kind, strings.Join(s.Listeners, ","), retryCell(s.Retry), serviceInFlight(s), s.RequestRate, s.ErrorRate, p, b, f)
		for _, be := range s.Backends {
			p, b, f := l4Cells(be.L4)
			fmt.Fprintf(tw, "\t\t  %s\t%d\t%s\t%s\t%.1f\t%.1f\t%s\t%s\t%s\t%s\n", backendName(be), be.Weight, backendState(be), backendInFlight(be), be.RequestRate, be.ErrorRate, p, b, f, lastCheck(be))
		}
	}
	if st.BGP != nil {
		tw.Flush()
		printBGPStatus(w, st.BGP)
	}
}

// printBGPStatus prints the BGP sessions and the VIPs' announcements.
func printBGPStatus(w io.Writer, st *admin.BGPStatus) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintln(tw, "BGP PEER\tASN\tSESSION\tUP")
	for _, p := range st.Peers {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", p.Address, p.ASN, p.State, time.Duration(p.Uptime)*time.Second)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "VIP\tROUTE\tSERVICES (USABLE/MIN)\tCOMMUNITIES\tANNOUNCED\tWITHDRAWN")
	for _, v := range st.VIPs {
		route := "withdrawn"
		if v.Announced {
			route = "announced"
		}
		communities := strings.Join(v.Communities, " ")
		if communities == "" {
			communities = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", v.VIP, route, v.Services, communities, v.Announcements, v.Withdrawals)
	}
}

// retryCell is a target's STATE cell: its retries and the retries its
// budget refused, when a retry policy governs it; else empty.
func retryCell(r *admin.RetryStatus) string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf("retries %d,refused %d", r.Total, r.BudgetExhausted)
}

// backendState summarises health, drain and passive health: up, down,
// with ",drained" or ",disabled" while out by an operator or discovery and
// ",ejected until 15:04:05" while passive health keeps it out. Health is
// the active checks' verdict: an ejected backend can be up.
func backendState(be admin.BackendStatus) string {
	state := "up"
	if !be.Healthy {
		state = "down"
	}
	switch {
	case be.Drained:
		state += ",drained"
	case !be.Enabled:
		state += ",disabled"
	}
	if be.Ejected {
		state += ",ejected"
		if !be.EjectedUntil.IsZero() {
			state += " until " + be.EjectedUntil.Format(time.TimeOnly)
		}
	}
	return state
}

// backendName is the backend's address, marked when it is a backup.
func backendName(be admin.BackendStatus) string {
	if be.Backup {
		return be.Addr + " (backup)"
	}
	return be.Addr
}

func lastCheck(be admin.BackendStatus) string {
	if be.LastCheck.IsZero() {
		return "-"
	}
	s := fmt.Sprintf("%s (%v)", be.LastCheck.Format(time.TimeOnly), be.LastCheckLatency.Round(time.Microsecond))
	if be.LastError != "" {
		s += " " + be.LastError
	}
	return s
}

func l4Cells(c *admin.L4Counters) (packets, bytes, flows string) {
	if c == nil {
		return "", "", ""
	}
	return fmt.Sprint(c.Packets), fmt.Sprint(c.Bytes), fmt.Sprint(c.NewFlows)
}
