-- Route tests of scripts/default.lua: siplua test -config config.toml

function test_options_keepalive()
	local res = siptest.run(siptest.request{method = "OPTIONS"})
	siptest.eq(res.status, 200)
	siptest.eq(res.reason, "Keepalive")
	siptest.ok(res.exit, "the route ends with KSR.x.exit()")
	siptest.eq(res.relay, nil, "nothing relayed")
end

function test_register_has_no_registrar()
	local res = siptest.run(siptest.request{method = "REGISTER"})
	siptest.eq(res.status, 404)
	siptest.eq(res.reason, "No registrar")
end

function test_too_many_hops()
	local res = siptest.run(siptest.request{method = "INVITE", headers = {["Max-Forwards"] = "0"}})
	siptest.eq(res.status, 483)
	siptest.eq(res.relay, nil)
end

function test_foreign_domain_is_forwarded()
	local res = siptest.run(siptest.request{method = "INVITE", ruri = "sip:bob@192.0.2.55:5080"})
	siptest.eq(res.reply, nil, "no reply from the proxy")
	siptest.eq(res.relay.dst, "udp:192.0.2.55:5080")
	siptest.eq(res.relay.ruri, "sip:bob@192.0.2.55:5080")
	siptest.eq(res.relay.method, "INVITE")
	siptest.eq(res.relay.header("Max-Forwards"), "69")
	siptest.match(res.relay.header("Via"), "^SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK")
	siptest.eq(#res.relay.hdrs("Via"), 2, "the proxy's Via on top of the caller's")
end

function test_local_user_not_found()
	local res = siptest.run(siptest.request{method = "INVITE", ruri = "sip:bob@127.0.0.1"})
	siptest.eq(res.status, 404)
	siptest.eq(res.reason, "Not Found")
	siptest.eq(res.reply.header("To"):match("tag=") ~= nil, true, "a To-tag on the local reply")
end
