-- Route tests of loadbalancer.lua: siplua test -config scripts/examples/loadbalancer.toml
-- The farm is dispatcher.list (127.0.0.1:5071..5073); callers come from 192.0.2.10 (siptest's default).

local FARM = {["udp:127.0.0.1:5071"] = true, ["udp:127.0.0.1:5072"] = true, ["udp:127.0.0.1:5073"] = true}

-- the relayed request of that method (a 503 or 486 makes tm ACK the server too)
local function relayed(res, method)
	for _, r in ipairs(res.relays) do
		if r.method == method then return r end
	end
	return nil
end

local function call()
	return siptest.request{method = "INVITE", from = "sip:alice@example.com", ruri = "sip:service@127.0.0.1"}
end

function test_options_keepalive()
	local res = siptest.run(siptest.request{method = "OPTIONS"})
	siptest.eq(res.status, 200)
	siptest.eq(res.reason, "Keepalive")
end

function test_call_goes_to_the_farm()
	local res = siptest.run(call())
	siptest.ok(FARM[res.relay.dst], "relayed to a farm server, got " .. res.relay.dst)
	siptest.eq(res.relay.ruri, "sip:service@127.0.0.1", "the R-URI is kept, $du picks the server")
	siptest.match(res.relay.header("Record-Route"), "^<sip:127.0.0.1:5060;lr;ftag=siptest%-")
	siptest.eq(res.status, 100)
end

function test_round_robin()
	local a = siptest.run(call()).relay.dst
	local b = siptest.run(call()).relay.dst
	siptest.ok(a ~= b, "two calls, two servers: " .. a .. " and " .. b)
end

function test_failover_on_503()
	local first = siptest.run(call())
	local res = siptest.reply(first.relay, 503)
	siptest.eq(relayed(res, "ACK").dst, first.relay.dst, "tm ACKs the 503")
	local again = relayed(res, "INVITE")
	siptest.ok(again, "the failure route relays again")
	siptest.ok(FARM[again.dst] and again.dst ~= first.relay.dst,
		"to another farm server, got " .. again.dst .. " after " .. first.relay.dst)
	siptest.eq(res.reply, nil, "the caller does not see the 503")
	siptest.ok(res.logged("^dispatcher:dst%-down: sip:127.0.0.1:%d+ %(820%)"), "ksr_dispatcher_event logs the server going down")
end

function test_busy_is_the_farms_answer()
	local first = siptest.run(call())
	local res = siptest.reply(first.relay, 486)
	siptest.eq(res.status, 486)
	siptest.eq(relayed(res, "INVITE"), nil, "no failover")
end

function test_whole_farm_down()
	siptest.ctl("dispatcher.set_state", "i", "1", "all")
	local res = siptest.run(call())
	siptest.eq(res.status, 503)
	siptest.eq(#res.relays, 0)
end

function test_banned_address_is_ignored()
	siptest.ctl("htable.seti", "ipban", "192.0.2.10", "1")
	local res = siptest.run(call())
	siptest.eq(res.reply, nil, "no answer at all")
	siptest.eq(#res.relays, 0)
	siptest.ok(res.exit)
end

function test_farm_requests_are_not_balanced()
	local res = siptest.run(siptest.request{method = "INVITE", from_ip = "127.0.0.1", from_port = 5072,
		ruri = "sip:carol@192.0.2.77:5066"})
	siptest.eq(res.relay.dst, "udp:192.0.2.77:5066")
	siptest.ok(res.flag(1), "FLT_FARM is set")
end

function test_too_many_hops()
	local res = siptest.run(siptest.request{method = "INVITE", headers = {["Max-Forwards"] = "0"}})
	siptest.eq(res.status, 483)
end

function test_in_dialog_without_route_set()
	local res = siptest.run(siptest.request{method = "BYE", to_tag = "b1", ruri = "sip:service@127.0.0.1"})
	siptest.eq(res.status, 404)
	siptest.eq(res.reason, "Not here")
end
