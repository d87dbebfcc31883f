-- The differential test's script: run unchanged by Kamailio 5.6 (app_lua) and by siplua.
-- X-Case selects what a request does:
--   ping          answered 200 (readiness probe)
--   values        every probe below, answered 200 with one "X-V: name -> type:value" header per value
--   w:<name>      a write (WRITES), the values it gives added to the request as X-V headers, then relayed
--                 statefully to X-Dst (the receiving peer compares the request as rewritten)
--   (none)        transaction routing: CANCEL/ACK through tm, X-Fork appends a branch, X-Failure arms
--                 a failure route that answers with the values it sees in the reason phrase

local out = {}

local function enc(v)
	if v == nil then return "nil" end
	local s = type(v) .. ":" .. tostring(v)
	return (string.gsub(s, "[\r\n]", "~"))
end

local function add(name, f, ...)
	local ok, v = pcall(f, ...)
	if not ok then
		out[#out + 1] = name .. " -> error"
		return
	end
	out[#out + 1] = name .. " -> " .. enc(v)
end

local PVS = {
	"$rm", "$ru", "$rU", "$rd", "$rp", "$rz", "$ou", "$du",
	"$fu", "$fU", "$fd", "$fn", "$ft", "$tu", "$tU", "$td", "$tn", "$tt",
	"$ci", "$cs", "$cl", "$ct", "$cT", "$ua", "$pr", "$proto", "$rs", "$rr",
	"$ml", "$mb", "$mf", "$bf", "$si", "$sp", "$Ri", "$Rp",
	"$hdr(X-A)", "$hdr(X-N)", "$hdr(X-None)", "$hdrc(Via)", "$hdrc(X-None)",
	"$T_reply_code", "$T_reply_reason", "$T_branch_idx", "$var(kdx)", "$avp(kdx)", "$shv(kdx)",
	"$hdr(Contact)", "$hdr(v)", "$hdr(f)", "$hdrc(Contact)", "$hdr(CSeq)", "$rb",
}

local function values()
	for _, pv in ipairs(PVS) do add(pv, KSR.pv.get, pv) end
	add("pv.gete(X-None)", KSR.pv.gete, "$hdr(X-None)")
	add("pv.getw(X-None)", KSR.pv.getw, "$hdr(X-None)")
	add("pv.geti(X-N)", KSR.pv.geti, "$hdr(X-N)")
	add("pv.geti(X-A)", KSR.pv.geti, "$hdr(X-A)")
	add("pv.geti(ru)", KSR.pv.geti, "$ru")
	add("pv.getvn(X-None)", KSR.pv.getvn, "$hdr(X-None)", 7)
	add("pv.getvs(X-None)", KSR.pv.getvs, "$hdr(X-None)", "dflt")
	add("pv.is_null(X-None)", KSR.pv.is_null, "$hdr(X-None)")
	add("pv.is_null(ru)", KSR.pv.is_null, "$ru")
	-- variables: set, read, unset, read
	KSR.pv.sets("$var(kdx)", "v1")
	add("var after sets", KSR.pv.get, "$var(kdx)")
	KSR.pv.seti("$shv(kdx)", 5)
	add("shv after seti", KSR.pv.get, "$shv(kdx)")
	KSR.pv.unset("$shv(kdx)")
	add("shv after unset", KSR.pv.get, "$shv(kdx)")
	KSR.pv.unset("$var(kdx)")
	add("var after unset", KSR.pv.get, "$var(kdx)")
	KSR.pv.sets("$avp(kdx)", "a1")
	add("avp after sets", KSR.pv.get, "$avp(kdx)")
	KSR.pv.unset("$avp(kdx)")
	add("avp after unset", KSR.pv.get, "$avp(kdx)")
	-- core
	add("is_myself_ruri", KSR.is_myself_ruri)
	add("is_myself_furi", KSR.is_myself_furi)
	add("is_myself_turi", KSR.is_myself_turi)
	add("is_myself_srcip", KSR.is_myself_srcip)
	local port = KSR.pv.get("$Rp")
	for _, u in ipairs({"sip:127.0.0.1", "127.0.0.1", "sip:127.0.0.1:" .. tostring(port), "127.0.0.1:" .. tostring(port),
			"sip:127.0.0.1:5", "sip:bob@127.0.0.1;transport=udp", "sip:bob@127.0.0.1;transport=tcp",
			"sip:127.0.0.1:" .. tostring(port) .. ";transport=tls", "sips:127.0.0.1", "tel:+4912345", "sip:example.com",
			"sip:localhost", "sip:[::1]", "garbage uri", "", "SIP:127.0.0.1", "sip:BOB@127.0.0.1", "sip:127.0.0.1;transport=UDP",
			"sip:127.0.0.1;transport=sctp", "sip:127.0.0.1:0", "sip:", "sip:@"}) do
		add("is_myself(" .. u .. ")", KSR.is_myself, u)
	end
	for _, m in ipairs({"INVITE", "invite", "OPTIONS", "INVITE|REGISTER", "REGISTER|OPTIONS", "OPTIONS|INVITE", "Foo", ""}) do
		add("is_method(" .. m .. ")", KSR.is_method, m)
	end
	for _, l in ipairs({"IR", "O", "ro", "X"}) do add("is_method_in(" .. l .. ")", KSR.is_method_in, l) end
	for _, f in ipairs({0, 31, 32, 63, 64, -1}) do
		add("setflag(" .. f .. ")", KSR.setflag, f)
		add("isflagset(" .. f .. ")", KSR.isflagset, f)
		add("resetflag(" .. f .. ")", KSR.resetflag, f)
		add("setbflag(" .. f .. ")", KSR.setbflag, f)
		add("isbflagset(" .. f .. ")", KSR.isbflagset, f)
	end
	add("$mf after flags", KSR.pv.get, "$mf")
	add("is_INVITE", KSR.is_INVITE)
	add("is_OPTIONS", KSR.is_OPTIONS)
	-- kx
	for _, n in ipairs({"get_method", "get_ruri", "get_ouri", "get_nhuri", "get_furi", "get_turi", "get_callid",
			"get_proto", "get_protoid", "get_msgtype", "get_bodylen", "get_status", "gets_status",
			"get_ruser", "get_rhost", "get_fuser", "get_fhost", "get_tuser", "get_thost", "get_ua", "get_duri",
			"get_cturi", "gete_cturi", "getw_cturi", "get_body", "gete_body", "getw_ruser", "get_srcip", "get_rcvip",
			"get_srcuri", "get_srcaddr_sock", "get_rcvaddr_sock", "get_srcport", "get_rcvport", "get_msglen",
			"gete_ruser", "gete_rhost", "getw_fuser", "getw_tuser", "gete_ua", "getw_ua", "gete_duri", "getw_duri"}) do
		add("kx." .. n, KSR.kx[n])
	end
	-- corex, siputils, maxfwd, hdr
	add("corex.has_ruri_user", KSR.corex.has_ruri_user)
	add("siputils.has_totag", KSR.siputils.has_totag)
	add("siputils.is_request", KSR.siputils.is_request)
	add("siputils.is_reply", KSR.siputils.is_reply)
	add("siputils.is_first_hop", KSR.siputils.is_first_hop)
	add("maxfwd.is_maxfwd_lt(10)", KSR.maxfwd.is_maxfwd_lt, 10)
	add("maxfwd.is_maxfwd_lt(80)", KSR.maxfwd.is_maxfwd_lt, 80)
	add("hdr.get(X-A)", KSR.hdr.get, "X-A")
	add("hdr.get(x-a)", KSR.hdr.get, "x-a")
	add("hdr.get(X-None)", KSR.hdr.get, "X-None")
	add("hdr.is_present(X-A)", KSR.hdr.is_present, "X-A")
	add("hdr.is_present(X-None)", KSR.hdr.is_present, "X-None")
	add("hdr.get(Content-Length)", KSR.hdr.get, "Content-Length")
	add("hdr.get(CSeq)", KSR.hdr.get, "CSeq")
	add("hdr.get_idx(Via,0)", KSR.hdr.get_idx, "Via", 0)
	add("hdr.get_idx(X-A,1)", KSR.hdr.get_idx, "X-A", 1)
	add("maxfwd.process_maxfwd(10)", KSR.maxfwd.process_maxfwd, 10)
	add("$hdr(Max-Forwards) after process_maxfwd", KSR.pv.get, "$hdr(Max-Forwards)")
	add("tm.t_check_trans", KSR.tm.t_check_trans)
	add("tm.t_is_set(failure_route)", KSR.tm.t_is_set, "failure_route")
	add("tmx.t_is_failure_route", KSR.tmx.t_is_failure_route)
	add("tmx.t_precheck_trans", KSR.tmx.t_precheck_trans)
	add("isdsturiset", KSR.isdsturiset)
	add("setdsturi", KSR.setdsturi, "sip:127.0.0.1:9;transport=tcp")
	add("$du after setdsturi", KSR.pv.get, "$du")
	add("kx.get_nhuri after setdsturi", KSR.kx.get_nhuri)
	add("resetdsturi", KSR.resetdsturi)
	add("$du after resetdsturi", KSR.pv.get, "$du")
	add("pv.sets($rp)", function() KSR.pv.sets("$rp", "5080") return KSR.pv.get("$ru") end)
	add("pv.sets($rd)", function() KSR.pv.sets("$rd", "example.org") return KSR.pv.get("$ru") end)
	add("pv.sets($rU)", function() KSR.pv.sets("$rU", "zed") return KSR.pv.get("$ru") end)
	add("pv.unset($rU)", function() KSR.pv.unset("$rU") return KSR.pv.get("$ru") end)
	add("$rz after writes", KSR.pv.get, "$rz")
	add("is_myself_ruri after writes", KSR.is_myself_ruri)
	add("kx.get_ruri after writes", KSR.kx.get_ruri)
	add("kx.get_ouri after writes", KSR.kx.get_ouri)
	add("seturi", KSR.seturi, "sip:x@127.0.0.1")
	add("is_myself_ruri after seturi", KSR.is_myself_ruri)
	add("setuser", KSR.setuser, "")
	add("$ru after setuser('')", KSR.pv.get, "$ru")
end

local function setpv(name, v)
	return function() KSR.pv.sets(name, v) return KSR.pv.get(name) end
end

-- each write returns what it returned, then the request goes on (relayed to X-Dst)
local WRITES = {
	setuser = function() return KSR.setuser("carol") end,
	sethost = function() return KSR.sethost("example.net") end,
	seturi_bad = function() return KSR.seturi("not a uri") end,
	fu = setpv("$fu", "sip:new@example.org"),
	fn = setpv("$fn", "New Name"),
	fU = setpv("$fU", "newuser"),
	fd = setpv("$fd", "example.org"),
	tu = setpv("$tu", "sip:newto@example.org"),
	tn = setpv("$tn", "To Name"),
	tU = setpv("$tU", "newto"),
	ru_bad = setpv("$ru", "not a uri"),
	ru = setpv("$ru", "sip:dave@example.org;x=1"),
	rU = setpv("$rU", "erin"),
	rd = setpv("$rd", "example.org"),
	du_bad = setpv("$du", "garbage"),
	hdr_append_no_crlf = function() return KSR.hdr.append("X-Y: 1") end,
	hdr_insert = function() return KSR.hdr.insert("X-Y: ins\r\n") end,
	hdr_remove = function() return KSR.hdr.remove("X-Dst") end,
	hdr_rmappend = function() return KSR.hdr.rmappend("X-Case", "X-Y: rm\r\n") end,
	hdr_remove_missing = function() return KSR.hdr.remove("X-None") end,
	setflag_branch = function() KSR.setbflag(3) return KSR.pv.get("$bf") end,
	ruri_user_phone = setpv("$ru", "sip:+4912345@example.com;user=phone"),
}

local function relay_to(dst)
	KSR.pv.sets("$du", dst)
	if KSR.tm.t_relay() < 0 then
		for _, l in ipairs(out) do KSR.hdr.append_to_reply("X-V: " .. l .. "\r\n") end
		KSR.sl.sl_send_reply(500, "relay failed")
	end
end

function ksr_request_route()
	local case = KSR.hdr.get("X-Case")
	if case == "ping" then
		KSR.sl.sl_send_reply(200, "Pong")
		return
	end
	out = {}
	if case == "values" then
		values()
		for _, l in ipairs(out) do KSR.hdr.append_to_reply("X-V: " .. l .. "\r\n") end
		KSR.sl.sl_send_reply(200, "Values")
		return
	end
	if case ~= nil and string.sub(case, 1, 2) == "w:" then
		local name = string.sub(case, 3)
		add(name, WRITES[name])
		add("$ru after", KSR.pv.get, "$ru")
		add("$rU after", KSR.pv.get, "$rU")
		add("$fu after", KSR.pv.get, "$fu")
		add("$tu after", KSR.pv.get, "$tu")
		add("$du after", KSR.pv.get, "$du")
		for _, l in ipairs(out) do KSR.hdr.append("X-V: " .. l .. "\r\n") end
		relay_to(KSR.hdr.get("X-Dst"))
		return
	end
	-- transaction routing
	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
		return
	end
	if KSR.is_ACK() then
		if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
		return
	end
	local fork = KSR.hdr.get("X-Fork")
	if fork ~= nil then KSR.corex.append_branch_uri(fork) end
	if KSR.hdr.get("X-Failure") ~= nil then KSR.tm.t_on_failure("ksr_failure_kd") end
	if KSR.hdr.get("X-Serial") ~= nil then KSR.tm.t_on_failure("ksr_serial_kd") end
	if KSR.hdr.get("X-Branch") ~= nil then KSR.tm.t_on_branch("ksr_branch_kd") end
	if KSR.hdr.get("X-OnReply") ~= nil then KSR.tm.t_on_reply("ksr_onreply_kd") end
	if KSR.tm.t_relay() < 0 then KSR.sl.sl_send_reply(500, "relay failed") end
end

-- the failure route answers with what it sees: the picked code and t_check_status of a few patterns
function ksr_failure_kd()
	if KSR.tm.t_is_canceled() > 0 then return end
	local s = "code=" .. tostring(KSR.pv.get("$T_reply_code"))
	s = s .. " st=" .. tostring(KSR.tm.t_get_status_code())
	for _, p in ipairs({"480", "486", "4[0-9][0-9]", "6[0-9][0-9]"}) do
		s = s .. " " .. p .. "=" .. tostring(KSR.tm.t_check_status(p))
	end
	s = s .. " fr=" .. tostring(KSR.tmx.t_is_failure_route())
	s = s .. " bt=" .. tostring(KSR.tm.t_branch_timeout()) .. " at=" .. tostring(KSR.tm.t_any_timeout())
	s = s .. " br=" .. tostring(KSR.tm.t_branch_replied()) .. " ar=" .. tostring(KSR.tm.t_any_replied())
	s = s .. " rr=" .. tostring(KSR.pv.get("$T_reply_reason")) .. " bi=" .. tostring(KSR.pv.get("$T_branch_idx"))
	s = s .. " rm=" .. tostring(KSR.pv.get("$rm")) .. " ru=" .. tostring(KSR.pv.get("$rU"))
	KSR.tm.t_reply(599, s)
end

-- serial forking: on a 486 or 480 the request goes on to X-Serial
function ksr_serial_kd()
	if KSR.tm.t_is_canceled() > 0 then return end
	if KSR.tm.t_check_status("48[06]") > 0 then
		KSR.seturi(KSR.hdr.get("X-Serial"))
		KSR.tm.t_relay()
	end
end

-- the branch route marks each branch with what it sees
function ksr_branch_kd()
	KSR.hdr.append("X-BI: idx=" .. tostring(KSR.pv.get("$T_branch_idx")) .. " ru=" .. tostring(KSR.pv.get("$rU")) ..
		" br=" .. tostring(KSR.tmx.t_is_branch_route()) .. "\r\n")
end

-- the onreply route drops a 183 (KSR.x.drop: Kamailio 5.6 has no KSR.drop) and marks the relayed replies
function ksr_onreply_kd()
	if KSR.pv.get("$rs") == 183 then KSR.x.drop() return end
	KSR.hdr.append("X-RI: rs=" .. tostring(KSR.pv.get("$rs")) .. " trc=" .. tostring(KSR.pv.get("$T_reply_code")) ..
		" rr=" .. tostring(KSR.tmx.t_is_reply_route()) .. "\r\n")
end

-- the core reply route marks every reply it sees (relayed ones carry it to the caller)
function ksr_reply_route()
	if KSR.hdr.get("X-RI") == nil and KSR.pv.get("$rs") ~= 100 then
		KSR.hdr.append("X-CR: rs=" .. tostring(KSR.pv.get("$rs")) .. " rr=" .. tostring(KSR.pv.get("$rr")) ..
			" rm=" .. tostring(KSR.pv.get("$rm")) .. " cs=" .. tostring(KSR.pv.get("$cs")) ..
			" tt=" .. tostring(KSR.pv.get("$tt")) .. " st=" .. tostring(KSR.kx.get_status()) ..
			" mt=" .. tostring(KSR.kx.get_msgtype()) .. " rq=" .. tostring(KSR.siputils.is_reply()) .. "\r\n")
	end
end
