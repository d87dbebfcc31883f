package dialog_test

import (
	"testing"

	"github.com/siplua/siplua/luabind/enginetest"
)

// TestDialogRepliesBeforeTM: dialog sees replies (engine.ReplyHook) only if it comes before tm in the
// module order (tm takes the replies of its transactions); with every module loaded it must still.
func TestDialogRepliesBeforeTM(t *testing.T) {
	p := enginetest.Start(t, enginetest.AllModulesConfig(), "function ksr_request_route() end")
	pos := map[string]int{}
	for i, l := range p.E.Config().Mods.List {
		pos[l.Name] = i
	}
	if pos["dialog"] >= pos["tm"] {
		t.Fatalf("module order puts dialog (%d) after tm (%d): dialog would miss the replies", pos["dialog"], pos["tm"])
	}
}
