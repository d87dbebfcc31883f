-- S2-edge: the S2 stateful proxy call (S2.lua) behind the edge checks of
-- scripts/examples/loadbalancer.lua, to measure their CPU cost against plain S2 (the same harness
-- scenario, run side by side): pike_check_req and sanity_check_defaults on every request, and the call's
-- INVITE relayed to the destination ds_select_dst chooses (set 1: only the harness UAS, which S2's
-- Request-URI names already, so the traffic is S2's). Kamailio KEMI.

local function relay()
	if KSR.tm.t_relay() < 0 then
		KSR.sl.sl_reply_error()
	end
end

function ksr_request_route()
	-- flood detection (s2-edge.toml sets the density far above the bench's rates: SIPp is one source)
	if KSR.pike.pike_check_req() < 0 then
		KSR.x.exit()
	end

	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		return 1
	end

	-- sanity's default checks (999: 1+2+4+32+64+128+256+512+2048); it has replied when it fails
	if KSR.sanity.sanity_check_defaults() < 0 then
		KSR.x.exit()
	end

	if KSR.siputils.has_totag() > 0 then
		if KSR.rr.loose_route() > 0 then
			relay()
			return 1
		end
		if KSR.is_ACK() then
			if KSR.tm.t_check_trans() > 0 then
				KSR.tm.t_relay()
			end
			return 1
		end
		KSR.sl.sl_send_reply(404, "Not here")
		return 1
	end

	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then
			KSR.tm.t_relay()
		end
		return 1
	end

	if KSR.is_INVITE() then
		KSR.rr.record_route()
	end

	-- round robin over set 1 ($du), the failover list kept as the load balancer keeps it (flags = 2)
	if KSR.dispatcher.ds_select_dst(1, 4) < 0 then
		KSR.sl.sl_send_reply(503, "Service Unavailable")
		return 1
	end

	relay()
	return 1
end
