package tm

import "time"

// WatchSends makes t call sent before every send it makes for a transaction (replies, requests on a
// branch, retransmissions, CANCEL, ACK), with whether the sending goroutine holds the transaction's lock.
func WatchSends(t *TM, sent func(lockHeld bool)) {
	h := sendHook(func(x *tx) { sent(heldBySender(x)) })
	t.sendHook.Store(&h)
}

// heldBySender reports whether the calling goroutine holds x.mu. A sync.Mutex has no owner, so: TryLock
// fails while any goroutine holds it, but another goroutine lets go within moments (nothing waits on
// anything under it), while a sender holding it itself never would; a lock still taken after a second is
// the sender's.
func heldBySender(x *tx) bool {
	deadline := time.Now().Add(time.Second)
	for !x.mu.TryLock() {
		if time.Now().After(deadline) {
			return true
		}
		time.Sleep(100 * time.Microsecond)
	}
	x.mu.Unlock()
	return false
}
