package luabind

import "github.com/siplua/siplua/engine"

// SetMsg lets the external fuzz test call KSR functions directly, as a route would see them.
func (st *State) SetMsg(m *engine.Msg) { st.msg = m }

// KamailioRC is the table of return-code notes of the stubs, for the test that keeps it on real exports.
var KamailioRC = kamailioRC
