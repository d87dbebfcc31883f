// Package all loads every siplua module.
package all

import (
	_ "github.com/siplua/siplua/modules/acc"
	_ "github.com/siplua/siplua/modules/auth"
	_ "github.com/siplua/siplua/modules/auth_db"
	_ "github.com/siplua/siplua/modules/core"
	_ "github.com/siplua/siplua/modules/corex"
	_ "github.com/siplua/siplua/modules/dialog"
	_ "github.com/siplua/siplua/modules/dispatcher"
	_ "github.com/siplua/siplua/modules/hdr"
	_ "github.com/siplua/siplua/modules/htable"
	_ "github.com/siplua/siplua/modules/kx"
	_ "github.com/siplua/siplua/modules/maxfwd"
	_ "github.com/siplua/siplua/modules/nathelper"
	_ "github.com/siplua/siplua/modules/permissions"
	_ "github.com/siplua/siplua/modules/pike"
	_ "github.com/siplua/siplua/modules/pv"
	_ "github.com/siplua/siplua/modules/registrar"
	_ "github.com/siplua/siplua/modules/rr"
	_ "github.com/siplua/siplua/modules/rtpengine"
	_ "github.com/siplua/siplua/modules/sanity"
	_ "github.com/siplua/siplua/modules/siputils"
	_ "github.com/siplua/siplua/modules/sl"
	_ "github.com/siplua/siplua/modules/tm"
	_ "github.com/siplua/siplua/modules/tmx"
	_ "github.com/siplua/siplua/modules/usrloc"
)
