package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/weir-lb/weir/pkg/admin"
	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/dataplane"
)

// runStatus implements "weir status": with -admin (or -c FILE naming an
// admin endpoint), every service as the running weir reports it, L7 and
// L4 in one table; then every L4 service in the pinned BPF maps with its
// table generation, live backends and counters, and every interface the
// program hooks with the hook asked for and the one running, read
// straight from the maps and pinned links so it works while, or after,
// weir runs.
func runStatus(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("weir status", flag.ContinueOnError)
	flags.SetOutput(stderr)
	pin := flags.String("pin", config.DefaultBPFPinPath, "bpffs `directory` holding weir's pinned maps")
	confPath := flags.String("c", "", "configuration `file`, to name the services and find the admin endpoint (optional)")
	adminAddr := flags.String("admin", "", "admin endpoint `address` to read the running weir's status from: host:port or unix:/path (default: the configuration's admin.listen)")
	tokenFile := flags.String("token-file", "", "`file` holding the admin endpoint's bearer token (default: the configuration's admin.token_file)")
	flags.Usage = func() {
		fmt.Fprintf(flags.Output(), "usage: weir status [-admin ADDR] [-token-file FILE] [-pin DIR] [-c FILE]\n\nPrint the running weir's services and BGP sessions and VIPs (from its admin endpoint), and the L4 services and interface hooks of the BPF data plane.\n\nFlags:\n")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return 2
	}
	pinGiven := false
	flags.Visit(func(f *flag.Flag) { pinGiven = pinGiven || f.Name == "pin" })
	names := map[uint32]string{}
	var cfg *config.Config
	if *confPath != "" {
		var err error
		cfg, err = config.Load(*confPath)
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
	var running *admin.BPFStatus
	if *adminAddr != "" {
		st, err := fetchAdminStatus(*adminAddr, *tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "weir status: %v\n", err)
			return 1
		}
		printAdminStatus(stdout, st)
		fmt.Fprintln(stdout)
		running = st.BPF
		if running != nil && !pinGiven && cfg == nil {
			// Read the pins of the weir that answered.
			*pin = running.PinPath
		}
		if running != nil && running.PinPath != *pin {
			running = nil // another data plane than the one read below
		}
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
	hooked, err := dp.Interfaces()
	if err != nil {
		fmt.Fprintf(stderr, "weir status: %v\n", err)
		return 1
	}
	printInterfaces(stdout, hooked, askedHooks(cfg, running))
	return 0
}

// askedHooks says which hook the configuration asks for on each
// interface: the running weir's word (from its admin status, including
// "not configured" for an interface it no longer uses), else the
// configuration's for the interfaces it names (services' interface:,
// bpf.interfaces). Other interfaces, such as those towards backends
// without the admin status, are not in it.
func askedHooks(cfg *config.Config, running *admin.BPFStatus) map[string]string {
	asked := map[string]string{}
	if running != nil {
		for _, i := range running.Interfaces {
			asked[i.Name] = cmp.Or(i.Attach, "not configured")
		}
		return asked
	}
	if cfg == nil {
		return asked
	}
	for name := range cfg.BPF.Interfaces {
		asked[name] = string(cfg.BPF.AttachOn(name))
	}
	for _, sc := range cfg.Services {
		if sc.Kind == config.KindL4 && sc.L4.Dataplane != config.DataplaneUserspace && sc.L4.Interface != "" {
			asked[sc.L4.Interface] = string(cfg.BPF.AttachOn(sc.L4.Interface))
		}
	}
	return asked
}

// printInterfaces prints, per interface, the hook asked for ("-" when
// unknown) and what the kernel runs, as read from the pinned links and
// weir's tc filters; an interface asked for where nothing runs shows
// "hook none".
func printInterfaces(w io.Writer, hooked []dataplane.InterfaceState, asked map[string]string) {
	got := map[string]string{}
	for _, h := range hooked {
		got[h.Name] = h.String()
	}
	for name, a := range asked {
		if _, ok := got[name]; !ok && a != "not configured" {
			got[name] = "none"
		}
	}
	if len(got) == 0 {
		fmt.Fprintln(w, "no interface hooked by the BPF data plane")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	for _, name := range slices.Sorted(maps.Keys(got)) {
		fmt.Fprintf(tw, "interface %s\tattach %s\thook %s\n", name, cmp.Or(asked[name], "-"), got[name])
	}
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
