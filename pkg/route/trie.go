package route

import (
	"bytes"
	"slices"
	"strings"
)

// trie is a tree of path segments holding a host set's exact and prefix
// routes. Its nodes lie in one slice, the children of each next to one
// another, and its lists and segments in one slice and one string each,
// so that a lookup reads few cache lines even in a table of thousands of
// hosts.
type trie struct {
	// nodes[0] is the root, which stands for the empty path; empty when
	// the trie holds no route.
	nodes []node
	// tags[i] is tagOf the segment of nodes[i].
	tags  []byte
	lists []int32
	keys  string
}

// node is a trie node: the path of its segments from the root. Each list
// holds, in route order, every route of the set that a path matches when
// it ends here (end), ends in "/" here (slash), or goes on below here
// along a segment that has no node (below).
type node struct {
	end, slash, below span
	// The children are nodes[kidFirst:kidFirst+kidN]; kidMap indexes
	// them by segment when there are more than maxKidScan.
	kidFirst, kidN uint32
	// The node's segment is keys[keyOff:keyOff+keyLen].
	keyOff, keyLen uint32
	kidMap         map[string]uint32
}

// span is a list in trie.lists.
type span struct{ off, n uint32 }

// maxKidScan is how many children a node scans before it uses a map.
const maxKidScan = 32

// tagOf is a one-byte digest of a segment that tells most different
// segments apart without reading them: its length, first and last bytes.
func tagOf[T string | []byte](seg T) byte {
	if len(seg) == 0 {
		return 0
	}
	return byte(len(seg)) ^ seg[0]<<1 ^ seg[len(seg)-1]
}

func (t *trie) list(s span) []int32 {
	end := s.off + s.n
	return t.lists[s.off:end:end]
}

// find returns the routes whose exact or prefix path matches path, a
// normalised path, in route order.
func (t *trie) find(path []byte) []int32 {
	if len(t.nodes) == 0 {
		return nil
	}
	n := &t.nodes[0]
	rest := path
	for {
		switch len(rest) {
		case 0:
			return t.list(n.end)
		case 1: // "/"
			return t.list(n.slash)
		}
		seg, after := rest[1:], []byte(nil)
		if i := bytes.IndexByte(seg, '/'); i >= 0 {
			seg, after = seg[:i], seg[i:]
		}
		c, ok := t.child(n, seg)
		if !ok {
			return t.list(n.below)
		}
		n, rest = &t.nodes[c], after
	}
}

// child returns the index of n's child for seg.
func (t *trie) child(n *node, seg []byte) (uint32, bool) {
	if n.kidMap != nil {
		c, ok := n.kidMap[string(seg)]
		return c, ok
	}
	tag := tagOf(seg)
	for i, tg := range t.tags[n.kidFirst : n.kidFirst+n.kidN] {
		if tg != tag {
			continue
		}
		c := n.kidFirst + uint32(i)
		k := &t.nodes[c]
		if t.keys[k.keyOff:k.keyOff+k.keyLen] == string(seg) {
			return c, true
		}
	}
	return 0, false
}

// trieBuilder is a node in the making: the routes whose path is its own.
type trieBuilder struct {
	exactEnd, exactSlash   []int32 // "/a" and "/a/" exactly
	prefixEnd, prefixSlash []int32 // "/a" and below, "/a/" and below
	kids                   map[string]*trieBuilder
	order                  []string
}

func (b *trieBuilder) insert(e *entry) {
	p := e.path[1:]
	slash := strings.HasSuffix(p, "/") || p == ""
	p = strings.TrimSuffix(p, "/")
	n := b
	if p != "" {
		for seg := range strings.SplitSeq(p, "/") {
			k := n.kids[seg]
			if k == nil {
				if n.kids == nil {
					n.kids = map[string]*trieBuilder{}
				}
				k = &trieBuilder{}
				n.kids[seg] = k
				n.order = append(n.order, seg)
			}
			n = k
		}
	}
	switch {
	case e.pathKind == PathExact && slash:
		n.exactSlash = append(n.exactSlash, e.index)
	case e.pathKind == PathExact:
		n.exactEnd = append(n.exactEnd, e.index)
	case slash:
		n.prefixSlash = append(n.prefixSlash, e.index)
	default:
		n.prefixEnd = append(n.prefixEnd, e.index)
	}
}

// build lays out the trie rooted at root, breadth first, so that the
// children of every node are consecutive.
func (t *trie) build(root *trieBuilder) {
	type item struct {
		b *trieBuilder
		// above is the routes of the node's ancestors that match every
		// path below them.
		above []int32
	}
	var keys strings.Builder
	t.nodes = append(t.nodes, node{})
	t.tags = append(t.tags, 0)
	queue := []item{{b: root}}
	for i := 0; i < len(queue); i++ {
		b, above := queue[i].b, queue[i].above
		below := union(above, b.prefixEnd, b.prefixSlash)
		belowSpan := t.addList(below)
		n := node{
			end:      t.addListOr(union(above, b.exactEnd, b.prefixEnd), below, belowSpan),
			slash:    t.addListOr(union(above, b.exactSlash, b.prefixEnd, b.prefixSlash), below, belowSpan),
			below:    belowSpan,
			kidFirst: uint32(len(t.nodes)),
			kidN:     uint32(len(b.order)),
			keyOff:   t.nodes[i].keyOff,
			keyLen:   t.nodes[i].keyLen,
		}
		for _, seg := range b.order {
			t.nodes = append(t.nodes, node{keyOff: uint32(keys.Len()), keyLen: uint32(len(seg))})
			t.tags = append(t.tags, tagOf(seg))
			keys.WriteString(seg)
			queue = append(queue, item{b: b.kids[seg], above: below})
		}
		if len(b.order) > maxKidScan {
			n.kidMap = make(map[string]uint32, len(b.order))
			for j, seg := range b.order {
				n.kidMap[seg] = n.kidFirst + uint32(j)
			}
		}
		t.nodes[i] = n
	}
	t.keys = keys.String()
	t.nodes = slices.Clip(t.nodes)
	t.lists = slices.Clip(t.lists)
}

// addList appends l to the lists and returns where it went.
func (t *trie) addList(l []int32) span {
	s := span{off: uint32(len(t.lists)), n: uint32(len(l))}
	t.lists = append(t.lists, l...)
	return s
}

// addListOr is addList, sharing the span of same when l equals it.
func (t *trie) addListOr(l, same []int32, sameSpan span) span {
	if slices.Equal(l, same) {
		return sameSpan
	}
	return t.addList(l)
}
