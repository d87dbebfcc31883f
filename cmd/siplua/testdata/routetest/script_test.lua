function test_reply()
	local res = siptest.run(siptest.request{method = "MESSAGE"})
	siptest.eq(res.status, 200)
	siptest.eq(res.pv("$var(route)"), "main")
	siptest.ok(res.logged("^routing MESSAGE from 192%.0%.2%.10$"))
	siptest.eq(res.exit, false)
	siptest.log("reply", res.status, res.reason)
end

function test_forward_to_du()
	local res = siptest.run(siptest.request{method = "INVITE", ruri = "sip:bob@example.org"})
	siptest.eq(res.relay.dst, "tcp:192.0.2.200:5090")
	siptest.eq(res.relay.ruri, "sip:bob@example.org")
	siptest.eq(res.du, "sip:192.0.2.200:5090;transport=tcp")
	siptest.match(res.relay.header("v"), "^SIP/2.0/TCP 127.0.0.1:5060;branch=")
end

function test_raw_message()
	local res = siptest.run(siptest.raw([[
		OPTIONS sip:127.0.0.1 SIP/2.0
		Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bK-raw
		Max-Forwards: 0
		From: <sip:x@198.51.100.7>;tag=1
		To: <sip:127.0.0.1>
		Call-ID: raw-1
		CSeq: 1 OPTIONS
	]], {from_ip = "198.51.100.7", from_port = 5062}))
	siptest.eq(res.status, 483)
	siptest.ok(res.exit)
	siptest.eq(res.reply.dst, "udp:198.51.100.7:5062")
end

function test_seeded_drop()
	siptest.ctl("htable.sets", "seen", "192.0.2.10", "yes")
	local res = siptest.run(siptest.request{method = "MESSAGE"})
	siptest.ok(res.drop)
	siptest.eq(res.reply, nil)
end

function test_wrong_status()
	local res = siptest.run(siptest.request{method = "MESSAGE"})
	siptest.eq(res.status, 404, "MESSAGE to the proxy")
end

function test_wrong_match()
	local res = siptest.run(siptest.request{method = "MESSAGE"})
	siptest.match(res.reason, "^Not")
end

function test_route_timeout()
	siptest.run(siptest.request{method = "NOTIFY"})
end

function test_script_error()
	siptest.run(siptest.request{method = "BYE"})
end

function test_script_error_allowed()
	local res = siptest.run(siptest.request{method = "BYE"}, {allow_error = true})
	siptest.eq(res.status, 500)
	siptest.match(res.error, "attempt to index")
end

function test_unknown_ctl()
	siptest.ctl("htable.sett", "seen", "a", "b")
end
