package lab

import "errors"

// errUnsupported is returned off Linux.
var errUnsupported = errors.New("lab: network namespaces need Linux")
