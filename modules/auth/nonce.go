package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"sync"
	"sync/atomic"
)

// A nonce is stateless: base64url(expiry[8] | random[8] | HMAC-SHA256(secret, expiry|random)[:16]), 43
// characters. Any siplua node with the same secret validates it; the random part makes each nonce unique, so
// it is also the key under which the nonce-count is tracked.
const (
	noncePayload = 16
	nonceMAC     = 16
	nonceLen     = 43 // base64.RawURLEncoding of 32 bytes
)

type nonceKey [noncePayload]byte

type noncer struct {
	key  []byte
	pool sync.Pool // hash.Hash (HMAC): keyed once, Reset per use
}

func newNoncer(secret []byte) *noncer {
	n := &noncer{key: secret}
	n.pool.New = func() any { return hmac.New(sha256.New, n.key) }
	return n
}

func (n *noncer) mac(dst *[32]byte, payload []byte) []byte {
	h := n.pool.Get().(hash.Hash)
	h.Reset()
	h.Write(payload)
	out := h.Sum(dst[:0])
	n.pool.Put(h)
	return out
}

// make returns a fresh nonce valid until expiry (unix seconds).
func (n *noncer) make(expiry int64) string {
	var raw [noncePayload + nonceMAC]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(expiry))
	_, _ = rand.Read(raw[8:noncePayload]) // crypto/rand.Read does not fail (Go ≥ 1.24)
	var sum [32]byte
	copy(raw[noncePayload:], n.mac(&sum, raw[:noncePayload]))
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// check validates a nonce made by make with the same secret: ok=false for anything else (wrong length or
// alphabet, another secret, a tampered expiry). The MAC is compared in constant time.
func (n *noncer) check(nonce []byte) (key nonceKey, expiry int64, ok bool) {
	if len(nonce) != nonceLen {
		return key, 0, false
	}
	var raw [noncePayload + nonceMAC]byte
	if m, err := base64.RawURLEncoding.Decode(raw[:], nonce); err != nil || m != len(raw) {
		return key, 0, false
	}
	var sum [32]byte
	if !hmac.Equal(n.mac(&sum, raw[:noncePayload])[:nonceMAC], raw[noncePayload:]) {
		return key, 0, false
	}
	copy(key[:], raw[:noncePayload])
	return key, int64(binary.BigEndian.Uint64(raw[:8])), true
}

// ncTable remembers, per nonce, the highest nonce-count that authenticated successfully, for replay
// protection (RFC 7616 §3.4: nc must grow). It is shared by all workers, sharded to keep lock contention
// low, and bounded: an entry lives until its nonce expires (swept periodically), and when a shard is full a
// new nonce is not tracked but answered as stale, so the client re-authenticates with a fresh nonce: the
// bound can cost a round trip, never a replay.
type ncTable struct {
	shards   [ncShards]ncShard
	perShard int
	n        atomic.Int64
}

const ncShards = 64

type ncShard struct {
	mu sync.Mutex
	m  map[nonceKey]ncEntry
}

type ncEntry struct {
	nc     uint32
	expiry int64
}

type ncResult uint8

const (
	ncOK ncResult = iota
	ncReplay
	ncFull
)

func newNCTable(max int) *ncTable {
	t := &ncTable{perShard: max / ncShards}
	if t.perShard < 1 {
		t.perShard = 1
	}
	for i := range t.shards {
		t.shards[i].m = map[nonceKey]ncEntry{}
	}
	return t
}

// shard: byte 8 is the first random byte of the nonce, so nonces spread evenly.
func (t *ncTable) shard(k nonceKey) *ncShard { return &t.shards[k[8]%ncShards] }

// replayed tells whether nc is not above the highest nc already accepted for this nonce (read only: a
// request that then fails authentication does not burn the nonce, Kamailio's flag 32 behaviour).
func (t *ncTable) replayed(k nonceKey, nc uint32) bool {
	s := t.shard(k)
	s.mu.Lock()
	e, ok := s.m[k]
	s.mu.Unlock()
	return ok && nc <= e.nc
}

// commit records nc after a successful authentication; a concurrent request that committed the same or a
// higher nc first makes this one a replay.
func (t *ncTable) commit(k nonceKey, nc uint32, expiry, now int64) ncResult {
	s := t.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if ok {
		if nc <= e.nc {
			return ncReplay
		}
		e.nc = nc
		s.m[k] = e
		return ncOK
	}
	if len(s.m) >= t.perShard {
		s.sweepLocked(now, &t.n)
		if len(s.m) >= t.perShard {
			return ncFull
		}
	}
	s.m[k] = ncEntry{nc: nc, expiry: expiry}
	t.n.Add(1)
	return ncOK
}

// sweep drops the entries of expired nonces (an expired nonce is refused before its nc is looked at).
func (t *ncTable) sweep(now int64) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		s.sweepLocked(now, &t.n)
		s.mu.Unlock()
	}
}

func (s *ncShard) sweepLocked(now int64, n *atomic.Int64) {
	for k, e := range s.m {
		if e.expiry < now {
			delete(s.m, k)
			n.Add(-1)
		}
	}
}
