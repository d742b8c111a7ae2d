package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/dataplane"
)

// runStatus implements "weir status": with -admin (or -c FILE naming an
// admin endpoint), every service as the running weir reports it, L7 and
// L4 in one table; then every L4 service in the pinned BPF maps with its
// table generation, live backends and counters, read straight from the
// maps so it works while, or after, weir runs.
func runStatus(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("weir status", flag.ContinueOnError)
	flags.SetOutput(stderr)
	pin := flags.String("pin", config.DefaultBPFPinPath, "bpffs `directory` holding weir's pinned maps")
	confPath := flags.String("c", "", "configuration `file`, to name the services and find the admin endpoint (optional)")
	adminAddr := flags.String("admin", "", "admin endpoint `address` to read the running weir's status from: host:port or unix:/path (default: the configuration's admin.listen)")
	tokenFile := flags.String("token-file", "", "`file` holding the admin endpoint's bearer token (default: the configuration's admin.token_file)")
	flags.Usage = func() {
		fmt.Fprintf(flags.Output(), "usage: weir status [-admin ADDR] [-token-file FILE] [-pin DIR] [-c FILE]\n\nPrint the running weir's services (from its admin endpoint) and the L4 services in the BPF data plane.\n\nFlags:\n")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return 2
	}
	names := map[uint32]string{}
	if *confPath != "" {
		cfg, err := config.Load(*confPath)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		*pin = cfg.BPF.PinPath
		id := uint32(0)
		for _, sc := range cfg.Services {
			if sc.Kind == config.KindL4 {
				names[id] = sc.Name
				id++
			}
		}
		if cfg.Admin != nil && len(cfg.Admin.Listen) > 0 && *adminAddr == "" {
			*adminAddr = adminTarget(cfg.Admin.Listen[0])
		}
		if cfg.Admin != nil && *tokenFile == "" {
			*tokenFile = cfg.Admin.TokenFile
		}
	}
	if *adminAddr != "" {
		st, err := fetchAdminStatus(*adminAddr, *tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "weir status: %v\n", err)
			return 1
		}
		printAdminStatus(stdout, st)
		fmt.Fprintln(stdout)
	}
	if _, err := os.Stat(*pin); errors.Is(err, fs.ErrNotExist) {
		// Opening would create the maps: report their absence instead.
		fmt.Fprintf(stdout, "no BPF data plane pinned at %s\n", *pin)
		return 0
	}
	dp, err := dataplane.Open(dataplane.Options{PinPath: *pin})
	if err != nil {
		fmt.Fprintf(stderr, "weir status: open the BPF data plane at %s: %v\n", *pin, err)
		return 1
	}
	defer dp.Close()
	services, err := dp.Services()
	if err != nil {
		fmt.Fprintf(stderr, "weir status: %v\n", err)
		return 1
	}
	printStatus(stdout, services, names)
	return 0
}

func printStatus(w io.Writer, services []dataplane.ServiceState, names map[uint32]string) {
	if len(services) == 0 {
		fmt.Fprintln(w, "no L4 services in the BPF data plane")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	for _, s := range services {
		name := names[s.ID]
		if name == "" {
			name = fmt.Sprintf("#%d", s.ID)
		}
		proto := "tcp"
		if s.Proto == 17 {
			proto = "udp"
		}
		fwd := fmt.Sprintf("snat %s ports %s", s.SNAT, s.SNATPorts)
		if s.Forwarding.IsDSR() {
			fwd = fmt.Sprintf("%s from %s", s.Forwarding, s.SNAT) // "dsr ipip from 203.0.113.1"
		}
		if s.Forwarding == dataplane.ForwardingDSRGUE {
			fwd += fmt.Sprintf(" to port %d", s.GUEPort) // "dsr gue from 203.0.113.1 to port 6080"
		}
		fmt.Fprintf(tw, "service %s\t%s %s\tgeneration %d\tbackends %d\tpackets %d\tbytes %d\tnew flows %d\tdrops %s\t%s\n",
			name, proto, s.VIP, s.Generation, len(s.Backends), s.Stats.Packets, s.Stats.Bytes, s.Stats.NewFlows, drops(s.Stats.Drops),
			fwd)
		for i, b := range s.Backends {
			var c dataplane.Counters
			if i < len(s.BackendStats) {
				c = s.BackendStats[i]
			}
			fmt.Fprintf(tw, "  %s\t\t\t\tpackets %d\tbytes %d\tnew flows %d\t\n", b, c.Packets, c.Bytes, c.NewFlows)
		}
	}
}

func drops(m map[string]uint64) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	for reason, n := range m {
		parts = append(parts, fmt.Sprintf("%s=%d", reason, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
