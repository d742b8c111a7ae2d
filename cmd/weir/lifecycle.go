package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/weir-lb/weir/pkg/accesslog"
	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/daemon"
	"github.com/weir-lb/weir/pkg/metrics"
	"github.com/weir-lb/weir/pkg/server"
	"github.com/weir-lb/weir/pkg/upgrade"
)

// process is one weir process's life: it binds its sockets (new, or
// inherited from the weir it replaces), serves, and answers signals:
// SIGTERM stops gracefully, SIGINT at once, SIGQUIT hands the sockets to
// a new weir started with -u, and SIGHUP starts that new weir itself.
type process struct {
	cfg      *config.Config
	confPath string // absolute, so a re-executed weir finds it anywhere
	srv      *server.Server
	log      *slog.Logger
	notifier *daemon.Notifier // nil-safe: no daemon parent, no systemd
	upgrade  bool             // -u: take the sockets over from a running weir

	metrics    *metrics.Metrics   // nil: no admin endpoint, nothing counted
	accessLogs *accesslog.Writers // reopened on SIGUSR1
	errorLog   *errorLogFile      // likewise

	// bgpHandedOver is closed, in the new weir of an upgrade, once the
	// old one has acknowledged ready (it closes its BGP sessions right
	// after) or did not answer: the speaker then resumes the sessions
	// (server.ResumeBGP).
	bgpHandedOver chan struct{}

	mu         sync.Mutex
	upgrading  bool // an outgoing upgrade is in progress
	handedOver bool // a successor serves: the pid file is its own
	stop       context.CancelFunc
}

// minHandoverWait is the floor of handoverWait: however short
// grace_period_seconds is, the two processes of an upgrade wait this
// long for each other. A new weir needs time to start, adopt the
// sockets, load BPF and run its first health round; with no wait at all
// (grace_period_seconds: 0, which Pingora users write to mean "no grace
// after the hand-over") every upgrade would fail. Pingora's own hand-over
// retries for about five seconds whatever its grace period says.
const minHandoverWait = 5 * time.Second

// reloadEnv marks the weir a SIGHUP started, so that it counts its
// take-over as a reload rather than an upgrade.
const reloadEnv = "WEIR_RELOAD"

// handoverWait bounds each side of an upgrade: how long the new weir
// waits for the old one to hand its sockets over and to acknowledge
// ready, and how long the old one waits for the new one to listen and
// report ready before it gives up and serves on. It is
// grace_period_seconds, but never less than minHandoverWait.
func (p *process) handoverWait() time.Duration {
	return max(p.cfg.GracePeriod, minHandoverWait)
}

// run serves until a signal ends the process and returns its exit code.
func (p *process) run() int {
	inh, err := p.bind()
	if err != nil {
		return p.fail(err)
	}
	if err := daemon.DropPrivileges(p.cfg.User, p.cfg.Group); err != nil {
		return p.abort(inh, err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	p.stop = stop
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	served := make(chan error, 1)
	go func() { served <- p.srv.Serve(ctx) }()

	select {
	case <-p.srv.Ready():
	case err := <-served:
		return p.abort(inh, fmt.Errorf("serving stopped before it was ready: %v", err))
	case sig := <-sigs:
		p.abort(inh, fmt.Errorf("%v before ready", sig))
		p.srv.Close()
		<-served
		return 1
	}
	if !p.announceReady(inh) {
		p.srv.Close()
		<-served
		return 1
	}
	defer p.cleanUp()
	for {
		select {
		case err := <-served:
			if err != nil {
				p.log.Error("weir stopped", "err", err)
				return 1
			}
			return 0
		case sig := <-sigs:
			p.onSignal(sig)
		}
	}
}

// bind takes the sockets over from the running weir with -u, or binds
// new ones. The returned Inheritance is nil without -u.
func (p *process) bind() (*upgrade.Inheritance, error) {
	if !p.upgrade {
		return nil, p.srv.Listen()
	}
	if err := ensureDir(p.cfg.UpgradeSock); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.handoverWait())
	defer cancel()
	p.log.Info("waiting for the running weir to hand over its sockets", "upgrade_sock", p.cfg.UpgradeSock, "wait", p.handoverWait())
	inh, err := upgrade.Receive(ctx, p.cfg.UpgradeSock)
	if err != nil {
		return nil, fmt.Errorf("take over from the running weir: %w", err)
	}
	// The running weir's drains, weights, added and removed backends and
	// health verdicts apply before any load balancer runs, so that this
	// one neither undrains a backend nor sends traffic to one found down.
	if err := p.srv.Restore(inh.State()); err != nil {
		return inh, fmt.Errorf("take over the running weir's runtime state: %w", err)
	}
	// The running weir closes its BGP sessions for a graceful restart
	// once this one is ready; this one re-opens them after that.
	p.bgpHandedOver = make(chan struct{})
	p.srv.ResumeBGP(p.bgpHandedOver)
	if err := p.srv.ListenWith(inherited{inh}); err != nil {
		return inh, err
	}
	return inh, nil
}

// abort reports a failed start: to the old weir, which keeps serving, to
// a waiting daemon parent, and on standard error.
func (p *process) abort(inh *upgrade.Inheritance, err error) int {
	if inh != nil {
		inh.Abort(err)
	}
	return p.fail(err)
}

func (p *process) fail(err error) int {
	p.log.Error("weir could not start", "err", err)
	p.notifier.Fail(err)
	fmt.Fprintf(os.Stderr, "weir: %v\n", err)
	return 1
}

// announceReady tells whoever waits that this weir serves: the old weir
// of an upgrade (which then stops accepting), then the pid file, then a
// daemon parent or systemd. It reports false when the old weir called
// the upgrade off, in which case this one must go.
func (p *process) announceReady(inh *upgrade.Inheritance) bool {
	settled := inh == nil
	if inh != nil {
		ctx, cancel := context.WithTimeout(context.Background(), p.handoverWait())
		err := inh.Ready(ctx)
		cancel()
		inh.Close() // sockets this configuration no longer uses
		switch {
		case errors.Is(err, upgrade.ErrCanceled):
			p.log.Error("the running weir called the upgrade off; exiting", "err", err)
			return false
		case err != nil:
			// The old weir may have stopped: serving on is safer.
			p.log.Warn("the running weir did not confirm the hand-over; serving anyway", "err", err)
			close(p.bgpHandedOver)
		default:
			p.log.Info("took over from the previous weir", "pid", inh.PeerPID())
			p.countUpgrade(os.Getenv(reloadEnv) == "1", metrics.Succeeded)
			settled = true
			close(p.bgpHandedOver)
		}
	}
	p.writePIDFile()
	if err := p.notifier.Ready(); err != nil {
		p.log.Warn("could not report readiness", "err", err)
	}
	p.detachUnused(settled)
	return true
}

// detachUnused unhooks the BPF data plane from interfaces this
// configuration no longer uses, once this weir alone serves (settled): it
// runs before the process answers any signal, so that it is over before
// this weir can hand over in turn. A previous weir that did not confirm
// the hand-over may still serve with its own interfaces: they stay, until
// the next start or reload.
func (p *process) detachUnused(settled bool) {
	if !settled {
		p.log.Info("not detaching the BPF data plane from interfaces no longer configured: the previous weir may still use them")
		return
	}
	if err := p.srv.DetachUnused(); err != nil {
		p.log.Error("BPF data plane: some interfaces no longer configured keep weir's hooks", "err", err)
	}
}

// writePIDFile records this process as the live weir. A missing default
// directory (/run/weir) is created; failing to write is worth a warning
// when someone asked for the file (daemon, or pid_file set), and only a
// note otherwise.
func (p *process) writePIDFile() {
	err := ensureDir(p.cfg.PIDFile)
	if err == nil {
		err = daemon.WritePIDFile(p.cfg.PIDFile, os.Getpid())
	}
	switch {
	case err == nil:
	case p.cfg.Daemon || p.cfg.PIDFile != config.DefaultPIDFile:
		p.log.Warn("could not write the pid file", "err", err)
	default:
		p.log.Info("no pid file", "err", err)
	}
}

// cleanUp runs at exit: systemd hears we stop, and the pid file goes if
// it still names us; after a hand-over it is the successor's to keep.
func (p *process) cleanUp() {
	p.notifier.Stopping()
	p.mu.Lock()
	handedOver := p.handedOver
	p.mu.Unlock()
	if handedOver {
		// The successor writes the pid file once it hears we let go;
		// removing "ours" could race with its rename and remove its file.
		return
	}
	if err := daemon.RemovePIDFile(p.cfg.PIDFile, os.Getpid()); err != nil && !errors.Is(err, os.ErrNotExist) {
		p.log.Warn("could not remove the pid file", "err", err)
	}
}

func (p *process) onSignal(sig os.Signal) {
	switch sig {
	case syscall.SIGTERM:
		p.log.Info("SIGTERM: stopping gracefully", "timeout", p.cfg.GracefulShutdownTimeout)
		p.stop()
	case syscall.SIGINT:
		p.log.Info("SIGINT: stopping now")
		p.srv.Close()
		p.stop()
	case syscall.SIGQUIT:
		p.log.Info("SIGQUIT: handing the sockets to a new weir", "upgrade_sock", p.cfg.UpgradeSock, "wait", p.handoverWait())
		go p.upgradeTo(nil)
	case syscall.SIGHUP:
		p.log.Info("SIGHUP: reloading through an upgrade into a new weir", "config", p.confPath)
		go p.reload()
	case syscall.SIGUSR1:
		p.reopenLogs()
	}
}

// reopenLogs opens every log file again at its path, as logrotate expects
// of a daemon after renaming them (NGINX's convention). A file that
// cannot be reopened keeps receiving lines where it was.
func (p *process) reopenLogs() {
	err := errors.Join(p.errorLog.Reopen(), p.accessLogs.ReopenAll())
	if err != nil {
		p.log.Error("SIGUSR1: reopening the logs failed; they go on to the old files", "err", err)
		return
	}
	p.log.Info("SIGUSR1: reopened the logs")
}

// countUpgrade counts an upgrade or a reload (a reload is an upgrade into
// a weir this one started) with its result.
func (p *process) countUpgrade(reload bool, result string) {
	switch {
	case p.metrics == nil:
	case reload:
		p.metrics.ReloadDone(result)
	default:
		p.metrics.UpgradeDone(result)
	}
}

// beginUpgrade claims the one outgoing upgrade a process may run.
func (p *process) beginUpgrade() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.upgrading {
		return false
	}
	p.upgrading = true
	return true
}

func (p *process) endUpgrade() {
	p.mu.Lock()
	p.upgrading = false
	p.mu.Unlock()
}

// upgradeTo hands every socket to the new weir listening on upgrade_sock
// and, once it reports ready, drains and exits. On any failure this weir
// keeps serving as if nothing happened. successor, when set, is the new
// weir this process started (SIGHUP): its exit ends the wait at once.
func (p *process) upgradeTo(successor *exec.Cmd) {
	if !p.beginUpgrade() {
		p.log.Warn("an upgrade is already in progress; ignoring this one")
		return
	}
	err := p.handOver(successor)
	if err == nil {
		p.mu.Lock()
		p.handedOver = true
		p.mu.Unlock()
		// With graceful restart, the routers keep the VIPs while the
		// new weir re-opens the sessions; without, the graceful stop
		// withdraws them, waits converge and closes, as on SIGTERM.
		p.srv.ReleaseBGP()
		p.stop() // graceful: finish what is in flight, then exit
		return
	}
	p.endUpgrade()
	p.countUpgrade(successor != nil, metrics.Failed)
	p.log.Error("upgrade failed; still serving", "err", err)
	if successor != nil {
		successor.Process.Kill()
	}
}

func (p *process) handOver(successor *exec.Cmd) error {
	sockets, err := handoffSockets(p.srv.Sockets())
	if err != nil {
		return err
	}
	defer closeFiles(sockets)
	// A snapshot: a change made while the successor starts applies to
	// this process only.
	state, err := p.srv.RuntimeState()
	if err != nil {
		return fmt.Errorf("hand over the runtime state: %w", err)
	}
	if err := ensureDir(p.cfg.UpgradeSock); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.handoverWait())
	defer cancel()
	if successor != nil {
		go func() {
			successor.Wait()
			cancel()
		}()
	}
	h, err := upgrade.OfferState(ctx, p.cfg.UpgradeSock, sockets, state)
	if err != nil {
		return err
	}
	if err := h.Wait(ctx); err != nil {
		return err
	}
	p.log.Info("the new weir serves; draining and exiting", "pid", h.PeerPID())
	if err := p.notifier.HandOver(h.PeerPID()); err != nil {
		p.log.Warn("could not tell systemd about the new main process", "err", err)
	}
	return nil
}

// reload checks the configuration with weir -t, starts a new weir with
// -u in its own session (so that it outlives this one), and upgrades
// into it.
func (p *process) reload() {
	exe, err := os.Executable()
	if err != nil {
		p.log.Error("reload: cannot find the weir binary", "err", err)
		return
	}
	if out, err := exec.Command(exe, "-t", "-c", p.confPath).CombinedOutput(); err != nil {
		p.countUpgrade(true, metrics.Failed)
		p.log.Error("reload refused: the configuration does not check", "err", err, "output", string(out))
		return
	}
	p.notifier.Reloading()
	cmd := exec.Command(exe, "-u", "-c", p.confPath)
	// The successor counts its take-over as a reload.
	cmd.Env = append(os.Environ(), reloadEnv+"=1")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	ownSession(cmd)
	if err := cmd.Start(); err != nil {
		p.log.Error("reload: start the new weir", "err", err)
		return
	}
	p.log.Info("reload: started the new weir", "pid", cmd.Process.Pid)
	p.upgradeTo(cmd)
}

// handoffSockets describes the server's sockets for the upgrade manifest.
func handoffSockets(socks []server.Socket) ([]upgrade.Socket, error) {
	out := make([]upgrade.Socket, 0, len(socks))
	for _, s := range socks {
		var us upgrade.Socket
		var err error
		if s.Listener != nil {
			us, err = upgrade.FromListener(s.Service, s.Addr, s.Index, s.Member, s.Listener)
		} else {
			us, err = upgrade.FromPacketConn(s.Service, s.Addr, s.Index, s.PacketConn)
		}
		if err != nil {
			closeFiles(out)
			return nil, fmt.Errorf("hand over %s %s of service %q: %w", s.Network, s.Addr, s.Service, err)
		}
		out = append(out, us)
	}
	return out, nil
}

func closeFiles(socks []upgrade.Socket) {
	for _, s := range socks {
		if s.File != nil {
			s.File.Close()
		}
	}
}

// inherited gives the server the sockets a previous weir handed over; the
// server binds new ones for the rest (a listener added to the
// configuration, more threads).
type inherited struct{ inh *upgrade.Inheritance }

var _ server.Opener = inherited{}

func (o inherited) Listener(spec server.ListenerSpec) (net.Listener, error) {
	ln, err := o.inh.Listener(spec.Service, spec.Addr, spec.Index, spec.Member)
	if errors.Is(err, upgrade.ErrNotInherited) {
		return nil, nil
	}
	return ln, err
}

func (o inherited) PacketConn(spec server.ListenerSpec) (net.PacketConn, error) {
	pc, err := o.inh.PacketConn(spec.Service, spec.Addr, spec.Index)
	if errors.Is(err, upgrade.ErrNotInherited) {
		return nil, nil
	}
	return pc, err
}

// ensureDir creates the directory of path (mode 0755) when it is missing,
// as for the default /run/weir.
func ensureDir(path string) error {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return nil
}
