-- A load balancer in front of a farm of SIP servers, in Kamailio KEMI style (the request checks of
-- Kamailio's kamailio-basic-kemi-lua.lua, the dispatching of Kamailio's dispatcher module documentation):
--
--   * every request from outside is checked first: a banned address is ignored, a flooding one
--     (pike) is banned for 5 minutes (htable "ipban"), too many hops get 483, a malformed request
--     gets sanity's reply;
--   * new calls from outside are spread over the farm (dispatcher set 1, round robin); a farm server
--     that answers 500/503 or does not answer at all is marked down and the call goes on to the next
--     one (failure route), the caller sees only the success;
--   * the farm's own requests (permissions group 1: its addresses) are relayed where they ask, without
--     balancing and without counting them against the flood limit;
--   * the balancer record-routes, so the requests within a call come back through it (loose_route).
--
-- Run: siplua -config scripts/examples/loadbalancer.toml (farm: dispatcher.list next to it)

FARM = 1        -- dispatcher set of the farm, and the permissions group of the farm's addresses
DS_ALG = 4      -- ds_select_dst algorithm: 4 round robin (0 Call-ID hash keeps a call's retries on one server)
FLT_FARM = 1    -- message flag: the request comes from the farm

-- SIP request routing (request_route)
function ksr_request_route()
	-- per request initial checks
	ksr_route_reqinit()

	-- CANCEL processing
	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then
			ksr_route_relay()
		end
		return 1
	end

	-- handle requests within SIP dialogs
	ksr_route_withindlg()

	-- only initial requests (no To tag) from here on

	-- handle retransmissions
	if KSR.tmx.t_precheck_trans() > 0 then
		KSR.tm.t_check_trans()
		return 1
	end
	if KSR.tm.t_check_trans() == 0 then return 1 end

	-- the farm's own requests go where the farm asks
	ksr_route_fromfarm()

	-- from outside: remove preloaded route headers; record-route dialog forming requests
	KSR.hdr.remove("Route")
	if KSR.is_method_in("IS") then
		KSR.rr.record_route()
	end

	-- balance over the farm
	ksr_route_dispatch()
	return 1
end

-- wrapper around tm relay function
function ksr_route_relay()
	if KSR.tm.t_relay() < 0 then
		KSR.sl.sl_reply_error()
	end
	KSR.x.exit()
end

-- Per SIP request initial checks (Kamailio's reqinit; the farm, not the proxy's own address, is exempt
-- from the flood checks: on one host every source would be "myself")
function ksr_route_reqinit()
	if KSR.permissions.allow_source_address(FARM) > 0 then
		KSR.setflag(FLT_FARM)
	else
		local srcip = KSR.kx.get_srcip()
		if KSR.htable.sht_get("ipban", srcip) ~= nil then
			-- ip is already blocked: no answer, an attacker learns nothing
			KSR.dbg("request from blocked IP - " .. KSR.kx.get_method()
					.. " from " .. srcip .. ":" .. KSR.kx.get_srcport() .. "\n")
			KSR.x.exit()
		end
		if KSR.pike.pike_check_req() < 0 then
			KSR.err("ALERT: pike blocking " .. KSR.kx.get_method()
					.. " from " .. srcip .. ":" .. KSR.kx.get_srcport() .. "\n")
			KSR.htable.sht_seti("ipban", srcip, 1)
			KSR.x.exit()
		end
	end

	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		KSR.x.exit()
	end

	-- keepalives for the balancer itself (the farm's and the callers' OPTIONS pings)
	if KSR.is_OPTIONS() and KSR.is_myself_ruri() and KSR.corex.has_ruri_user() < 0 then
		KSR.sl.sl_send_reply(200, "Keepalive")
		KSR.x.exit()
	end

	-- Kamailio's basic configuration: 1511 = request-line version, R-URI, required headers, CSeq method
	-- and number, Content-Length, Expires, URIs (7: R-URI, From, To); sanity has replied when it fails
	if KSR.sanity.sanity_check(1511, 7) < 0 then
		KSR.err("Malformed SIP message from "
				.. KSR.kx.get_srcip() .. ":" .. KSR.kx.get_srcport() .. "\n")
		KSR.x.exit()
	end
end

-- Handle requests within SIP dialogs
function ksr_route_withindlg()
	if KSR.siputils.has_totag() < 0 then return 1 end

	-- sequential requests within a dialog take the path determined by record-routing
	if KSR.rr.loose_route() > 0 then
		if KSR.is_NOTIFY() then
			-- Record-Route for in-dialog NOTIFY as per RFC 6665
			KSR.rr.record_route()
		end
		ksr_route_relay()
	end
	if KSR.is_ACK() then
		if KSR.tm.t_check_trans() > 0 then
			-- no loose-route, but stateful ACK: an ACK after a non-2xx final reply
			ksr_route_relay()
		end
		-- ACK without matching transaction: ignore and discard
		KSR.x.exit()
	end
	KSR.sl.sl_send_reply(404, "Not here")
	KSR.x.exit()
end

-- Requests from the farm: relayed to their Request-URI, or along the Route set the farm preloaded
-- (loose_route takes the balancer's own entry off and sends to the next one)
function ksr_route_fromfarm()
	if not KSR.isflagset(FLT_FARM) then return 1 end
	KSR.rr.loose_route()
	if KSR.is_method_in("IS") then
		KSR.rr.record_route()
	end
	ksr_route_relay()
end

-- Requests from outside: one farm server chosen by DS_ALG ($du), the others kept for failover
function ksr_route_dispatch()
	if KSR.dispatcher.ds_select_dst(FARM, DS_ALG) < 0 then
		-- every farm server is down (or disabled)
		KSR.sl.sl_send_reply(503, "Service Unavailable")
		KSR.x.exit()
	end
	KSR.tm.t_on_failure("ksr_failure_dispatch")
	ksr_route_relay()
end

-- Failover (failure_route): a server that answered 500/503, or did not answer before tm's fr_timer, is
-- marked inactive and probing (the OPTIONS pings bring it back) and the request goes to the next one.
-- Another final reply (486, 404 ...) is the farm's answer: it goes to the caller.
function ksr_failure_dispatch()
	if KSR.tm.t_is_canceled() > 0 then
		return 1
	end
	if KSR.tm.t_check_status("500|503") > 0
			or (KSR.tm.t_branch_timeout() > 0 and KSR.tm.t_branch_replied() < 0) then
		KSR.dispatcher.ds_mark_dst_state("ip")
		if KSR.dispatcher.ds_next_dst() > 0 then
			KSR.tm.t_on_failure("ksr_failure_dispatch")
			KSR.tm.t_relay()
		end
	end
	return 1
end

-- dispatcher event_callback: a farm server went down or came back. Caused by a call (ds_mark_dst_state
-- in the failure route): the server is the call's $du, the code 820; by the pings: the server is $ru,
-- the code the ping's reply (408: no reply)
function ksr_dispatcher_event(evname)
	evname = evname or KSR.pv.get("$dsg(event)")
	local dst = KSR.pv.get("$du") or KSR.pv.get("$ru")
	KSR.warn(evname .. ": " .. dst .. " (" .. tostring(KSR.pv.get("$dsg(code)")) .. ")\n")
end
