package registrar_test

import (
	"testing"

	"github.com/siplua/siplua/luabind/enginetest"
)

// TestSIPpRegisterAndCall runs the S3 benchmark's script and scenarios: SIPp registers N users whose
// Contact is a SIPp UAS, then a SIPp UAC calls each user through the proxy, which finds the UAS by
// lookup("location"); every call (INVITE, ACK, BYE loose-routed) must complete.
func TestSIPpRegisterAndCall(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.tm]\n[modules.rr]\n[modules.maxfwd]\n[modules.siputils]\n[modules.usrloc]\n[modules.registrar]\n",
		enginetest.S3Script(t))
	enginetest.RegisterAndCall(t, p, p, 20)
}
