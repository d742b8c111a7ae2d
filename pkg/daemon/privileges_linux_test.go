package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"

	"github.com/weir-lb/weir/internal/testenv"
)

// unknownID is a user and group id the test assumes no database knows.
const unknownID = "54321"

// nobody returns the unprivileged account the tests switch to.
func nobody(t *testing.T) (uid, gid int, group string) {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("the tests need the user nobody: %v", err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatalf("the tests need nobody's group: %v", err)
	}
	uid, _ = parseID(u.Uid)
	gid, _ = parseID(u.Gid)
	return uid, gid, g.Name
}

func needUnknownID(t *testing.T) {
	t.Helper()
	if _, err := user.LookupId(unknownID); err == nil {
		t.Skipf("uid %s exists on this host; the case needs an id no database knows", unknownID)
	}
	if _, err := user.LookupGroupId(unknownID); err == nil {
		t.Skipf("gid %s exists on this host; the case needs an id no database knows", unknownID)
	}
}

func TestResolveIdentity(t *testing.T) {
	uid, gid, group := nobody(t)
	const current = 4242
	tests := []struct {
		name        string
		user, group string
		unknown     bool // needs unknownID to be unknown
		want        identity
		wantErr     error
	}{
		{name: "user name", user: "nobody",
			want: identity{uid: uid, gid: gid, groups: []int{gid}}},
		{name: "numeric user", user: itoa(uid),
			want: identity{uid: uid, gid: gid, groups: []int{gid}}},
		{name: "user and group", user: "nobody", group: group,
			want: identity{uid: uid, gid: gid, groups: []int{gid}}},
		{name: "user and another group", user: "nobody", group: "0",
			want: identity{uid: uid, gid: 0, groups: []int{0}}},
		{name: "group only", group: group,
			want: identity{uid: current, gid: gid, groups: []int{gid}, keepUID: true}},
		{name: "ids no database knows", user: unknownID, group: unknownID, unknown: true,
			want: identity{uid: 54321, gid: 54321, groups: []int{54321}}},
		{name: "unknown id without group", user: unknownID, unknown: true, wantErr: ErrUnknownGroup},
		{name: "unknown user name", user: "no-such-weir-user", wantErr: ErrUnknownUser},
		{name: "unknown group name", user: "nobody", group: "no-such-weir-group", wantErr: ErrUnknownGroup},
		{name: "the no-change id", user: "4294967295", group: "0", wantErr: ErrUnknownUser},
		{name: "negative id", user: "-1", group: "0", wantErr: ErrUnknownUser},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.unknown {
				needUnknownID(t)
			}
			got, err := resolveIdentity(tt.user, tt.group, current)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("resolveIdentity(%q, %q) = %v, %v; want %v", tt.user, tt.group, got, err, tt.wantErr)
				}
				return
			}
			tt.want.user, tt.want.group = tt.user, tt.group
			if err != nil || got.uid != tt.want.uid || got.gid != tt.want.gid ||
				!slices.Equal(got.groups, tt.want.groups) || got.keepUID != tt.want.keepUID {
				t.Errorf("resolveIdentity(%q, %q) = %+v, %v; want %+v", tt.user, tt.group, got, err, tt.want)
			}
		})
	}
}

// runRole runs the test binary in role with env added and decodes the
// identity it reports.
func runRole(t *testing.T, role string, env []string, extra ...*os.File) identityReport {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = roleEnviron(role, env...)
	cmd.ExtraFiles = extra
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("role %s: %v\n%s", role, err, stderr.String())
	}
	var rep identityReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("role %s printed %q: %v", role, out, err)
	}
	return rep
}

// TestDropPrivileges drops root in a child process with several threads
// and checks the identity of the process and of every thread, and that
// root cannot be regained.
func TestDropPrivileges(t *testing.T) {
	testenv.NeedRoot(t)
	_, _, group := nobody(t)
	tests := []struct {
		name        string
		user, group string
		preDrop     string // a user to become first
		unknown     bool
		wantErr     error
	}{
		{name: "user", user: "nobody"},
		{name: "numeric user and group", user: unknownID, group: unknownID, unknown: true},
		{name: "user and group", user: "nobody", group: group},
		{name: "group only", group: group},
		{name: "not root", user: "root", preDrop: "nobody", wantErr: ErrNeedRoot},
		{name: "already that user", user: "nobody", preDrop: "nobody"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.unknown {
				needUnknownID(t)
			}
			rep := runRole(t, "drop", []string{userEnv + "=" + tt.user, groupEnv + "=" + tt.group, preDropEnv + "=" + tt.preDrop})
			if tt.wantErr != nil {
				if !strings.Contains(rep.Err, tt.wantErr.Error()) {
					t.Fatalf("DropPrivileges error = %q, want %q", rep.Err, tt.wantErr)
				}
				return
			}
			if rep.Err != "" {
				t.Fatalf("DropPrivileges: %s", rep.Err)
			}
			want, err := resolveIdentity(tt.user, tt.group, 0)
			if err != nil {
				t.Fatal(err)
			}
			checkIdentity(t, rep, want)
		})
	}
}

// checkIdentity compares the identity a child reported with want.
func checkIdentity(t *testing.T, rep identityReport, want identity) {
	t.Helper()
	if rep.UID != [3]int{want.uid, want.uid, want.uid} || rep.GID != [3]int{want.gid, want.gid, want.gid} {
		t.Errorf("real/effective/saved uid %v gid %v; want %d and %d", rep.UID, rep.GID, want.uid, want.gid)
	}
	if slices.Sort(rep.Groups); !slices.Equal(rep.Groups, want.groups) {
		t.Errorf("supplementary groups %v, want %v", rep.Groups, want.groups)
	}
	if len(rep.Threads) < 2*5 { // the main thread and the four held ones
		t.Errorf("only %d thread identity lines; the child should have 5 threads or more", len(rep.Threads))
	}
	for _, line := range rep.Threads {
		id := want.uid
		if strings.Contains(line, "Gid:") {
			id = want.gid
		}
		if wantSuffix := fmt.Sprintf(" %d %d %d %d", id, id, id, id); !strings.HasSuffix(line, wantSuffix) {
			t.Errorf("thread %s; want all four ids %d", line, id)
		}
	}
	if want.uid != 0 && rep.RegainRoot == "" {
		t.Error("setuid(0) succeeded after dropping privileges")
	}
}

// TestBPFAfterDrop checks what the package README says about BPF: once
// root is dropped, a map opened before can still be updated through its
// descriptor, but a tc program can no longer be loaded.
func TestBPFAfterDrop(t *testing.T) {
	testenv.NeedRoot(t)
	if err := features.HaveProgramType(ebpf.SchedCLS); err != nil {
		testenv.SkipOrFail(t, fmt.Sprintf("kernel cannot load tc programs: %v", err))
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fd, err := unix.Dup(m.FD())
	if err != nil {
		t.Fatal(err)
	}
	inherited := os.NewFile(uintptr(fd), "bpf map")
	defer inherited.Close()

	rep := runRole(t, "bpf", nil, inherited)
	if rep.Err != "" {
		t.Fatalf("DropPrivileges: %s", rep.Err)
	}
	if rep.UID[0] == 0 || rep.UID[1] == 0 || rep.UID[2] == 0 {
		t.Fatalf("the child is still root: uid %v", rep.UID)
	}
	if rep.MapUpdate != "" {
		t.Errorf("updating the inherited map after the drop failed: %s", rep.MapUpdate)
	}
	var got uint32
	if err := m.Lookup(uint32(0), &got); err != nil || got != 42 {
		t.Errorf("map[0] = %d, %v; want 42, written by the unprivileged child", got, err)
	}
	t.Logf("after the drop, loading a tc program fails: %s", rep.ProgLoad)
	if !rep.ProgLoadPerm {
		t.Errorf("loading a tc program after the drop: %q; want EPERM", rep.ProgLoad)
	}
}
