-- Route tests of registrar.lua: siplua test -config scripts/examples/registrar.toml
-- Each test starts with an empty location table; siptest.ctl("ul.add", ...) registers a contact as
-- `siplua ctl ul.add` would.

function test_options_keepalive()
	local res = siptest.run(siptest.request{method = "OPTIONS"})
	siptest.eq(res.status, 200)
	siptest.eq(res.reason, "Keepalive")
end

function test_too_many_hops()
	local res = siptest.run(siptest.request{method = "INVITE", headers = {["Max-Forwards"] = "0"}})
	siptest.eq(res.status, 483)
end

function test_register_is_challenged()
	local res = siptest.run(siptest.request{method = "REGISTER"})
	siptest.eq(res.status, 401)
	siptest.match(res.reply.header("WWW-Authenticate"), '^Digest realm="127.0.0.1"')
	siptest.eq(#res.reply.hdrs("WWW-Authenticate"), 2, "SHA-256 and MD5 challenges")
	siptest.ok(res.exit)
end

function test_register_with_credentials()
	local challenge = siptest.run(siptest.request{method = "REGISTER"})
	local res = siptest.run(siptest.request{method = "REGISTER", cseq = 2,
		headers = siptest.digest(challenge, "alice", "alice-secret")})
	siptest.eq(res.status, 200)
	siptest.match(res.reply.header("Contact"), "^<sip:alice@192.0.2.10:5060>;expires=")
	local loc = siptest.ctl("ul.lookup", "alice")
	siptest.ok(loc, "alice is in the location table")
end

function test_register_wrong_password()
	local challenge = siptest.run(siptest.request{method = "REGISTER"})
	local res = siptest.run(siptest.request{method = "REGISTER", cseq = 2,
		headers = siptest.digest(challenge, "alice", "not-her-password")})
	siptest.eq(res.status, 401)
end

function test_not_an_open_relay()
	local res = siptest.run(siptest.request{method = "INVITE", from = "sip:mallory@example.com",
		ruri = "sip:someone@192.0.2.99"})
	siptest.eq(res.status, 403)
	siptest.eq(res.reason, "Not relaying")
	siptest.eq(#res.relays, 0)
end

function test_call_to_unregistered_user()
	local res = siptest.run(siptest.request{method = "INVITE", from = "sip:carol@example.com",
		ruri = "sip:bob@127.0.0.1"})
	siptest.eq(res.status, 404)
	siptest.eq(#res.relays, 0)
end

function test_call_to_registered_user()
	siptest.ctl("ul.add", "bob", "sip:bob@192.0.2.20:5062")
	local res = siptest.run(siptest.request{method = "INVITE", from = "sip:carol@example.com",
		ruri = "sip:bob@127.0.0.1", body = "v=0\r\n"})
	siptest.eq(res.status, 100, "tm's 100 Trying, no final reply yet")
	siptest.eq(res.relay.dst, "udp:192.0.2.20:5062")
	siptest.eq(res.relay.ruri, "sip:bob@192.0.2.20:5062")
	siptest.eq(res.relay.header("Record-Route"), "<sip:127.0.0.1:5060;lr=on>", "enable_full_lr")
	siptest.eq(res.relay.body, "v=0\r\n")
end

function test_busy_callee_reply_goes_back()
	siptest.ctl("ul.add", "bob", "sip:bob@192.0.2.20:5062")
	local call = siptest.run(siptest.request{method = "INVITE", from = "sip:carol@example.com",
		ruri = "sip:bob@127.0.0.1"})
	local res = siptest.reply(call.relay, 486)
	siptest.eq(res.status, 486, "the caller gets the callee's answer")
	siptest.eq(res.reply.dst, "udp:192.0.2.10:5060")
	siptest.eq(#res.reply.hdrs("Via"), 1, "the proxy's Via is taken off")
end

function test_in_dialog_without_route_set()
	local res = siptest.run(siptest.request{method = "BYE", to_tag = "x1", from = "sip:carol@example.com",
		ruri = "sip:bob@127.0.0.1"})
	siptest.eq(res.status, 404)
	siptest.eq(res.reason, "Not here")
end

function test_foreign_domain_call_from_local_user_needs_auth()
	local res = siptest.run(siptest.request{method = "INVITE", ruri = "sip:dave@192.0.2.99"})
	siptest.eq(res.status, 407)
	siptest.ok(res.reply.header("Proxy-Authenticate"))
end
