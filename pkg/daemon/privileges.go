package daemon

import (
	"errors"
	"fmt"
	"math"
	"os/user"
	"slices"
	"strconv"
)

// identity is the user and groups DropPrivileges switches to.
type identity struct {
	uid, gid int
	groups   []int // supplementary groups, sorted, without duplicates
	keepUID  bool  // only a group was asked for
	// user and group are as configured, for messages.
	user, group string
}

// String names the identity the way the configuration did, with the
// numbers it resolved to.
func (id identity) String() string {
	if id.keepUID {
		return fmt.Sprintf("group %q (gid %d)", id.group, id.gid)
	}
	if id.group == "" {
		return fmt.Sprintf("user %q (uid %d, gid %d)", id.user, id.uid, id.gid)
	}
	return fmt.Sprintf("user %q (uid %d), group %q (gid %d)", id.user, id.uid, id.group, id.gid)
}

// resolveIdentity turns the configured user and group, names or numeric
// ids, into the identity to switch to; currentUID is kept when only a
// group is given.
//
// The supplementary groups are the user's groups from the group database
// when only a user is given, as login(1) would set them, and the group
// alone when a group is given, so that the configuration says exactly
// which group's files weir may reach. A numeric user id with no entry in
// the user database is accepted (containers often have none), but then
// its group must be given too.
func resolveIdentity(userName, groupName string, currentUID int) (identity, error) {
	id := identity{user: userName, group: groupName, uid: currentUID, gid: -1, keepUID: userName == ""}
	if userName != "" {
		acct, err := lookupUser(userName)
		if err != nil {
			return identity{}, err
		}
		id.uid, id.gid, id.groups = acct.uid, acct.gid, acct.groups
	}
	if groupName != "" {
		gid, err := lookupGroup(groupName)
		if err != nil {
			return identity{}, err
		}
		id.gid, id.groups = gid, []int{gid}
	}
	if id.gid < 0 {
		return identity{}, fmt.Errorf("%w: user %q is not in the user database, so its group is unknown; set group as well", ErrUnknownGroup, userName)
	}
	if !slices.Contains(id.groups, id.gid) {
		id.groups = append(id.groups, id.gid)
	}
	slices.Sort(id.groups)
	id.groups = slices.Compact(id.groups)
	return id, nil
}

// account is a user as the user database describes it; gid is -1 and
// groups empty for a numeric id the database does not know.
type account struct {
	uid, gid int
	groups   []int
}

// lookupUser resolves a user name, or failing that a numeric user id.
func lookupUser(name string) (account, error) {
	u, err := user.Lookup(name)
	if errors.As(err, new(user.UnknownUserError)) {
		return lookupNumericUser(name)
	}
	if err != nil {
		return account{}, fmt.Errorf("look up user %q: %w", name, err)
	}
	return accountOf(name, u)
}

// lookupNumericUser resolves name as a numeric user id; one the user
// database does not know is accepted as it is, without a group.
func lookupNumericUser(name string) (account, error) {
	uid, err := parseID(name)
	if err != nil {
		return account{}, fmt.Errorf("%w %q: no such user name, and not a numeric user id", ErrUnknownUser, name)
	}
	u, err := user.LookupId(name)
	if errors.As(err, new(user.UnknownUserIdError)) {
		return account{uid: uid, gid: -1}, nil
	}
	if err != nil {
		return account{}, fmt.Errorf("look up user id %s: %w", name, err)
	}
	return accountOf(name, u)
}

// accountOf converts the user database's entry for name.
func accountOf(name string, u *user.User) (account, error) {
	uid, uerr := parseID(u.Uid)
	gid, gerr := parseID(u.Gid)
	if err := errors.Join(uerr, gerr); err != nil {
		return account{}, fmt.Errorf("user %q: the user database gives uid %q, gid %q: %w", name, u.Uid, u.Gid, err)
	}
	return account{uid: uid, gid: gid, groups: userGroups(u)}, nil
}

// userGroups returns the ids of the groups u belongs to; on a lookup
// failure, none, and resolveIdentity falls back to the primary group.
func userGroups(u *user.User) []int {
	names, err := u.GroupIds()
	if err != nil {
		return nil
	}
	groups := make([]int, 0, len(names))
	for _, name := range names {
		if gid, err := parseID(name); err == nil {
			groups = append(groups, gid)
		}
	}
	return groups
}

// lookupGroup resolves a group name, or failing that a numeric group id;
// a numeric id the group database does not know is accepted as it is.
func lookupGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err == nil {
		gid, err := parseID(g.Gid)
		if err != nil {
			return 0, fmt.Errorf("group %q: the group database gives gid %q: %w", name, g.Gid, err)
		}
		return gid, nil
	}
	if !errors.As(err, new(user.UnknownGroupError)) {
		return 0, fmt.Errorf("look up group %q: %w", name, err)
	}
	gid, perr := parseID(name)
	if perr != nil {
		return 0, fmt.Errorf("%w %q: no such group name, and not a numeric group id", ErrUnknownGroup, name)
	}
	return gid, nil
}

// parseID parses a numeric user or group id. The largest 32-bit value is
// refused: to setuid(2) and friends it means "leave unchanged".
func parseID(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == math.MaxUint32 {
		return 0, fmt.Errorf("%q is not a user or group id", s)
	}
	return int(n), nil
}
