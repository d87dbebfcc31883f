-- A transaction-stateful proxy in the spirit of Kamailio's kamailio-basic-kemi-lua.lua: sanity checks,
-- in-dialog requests loose-routed on the Record-Route set, CANCEL matched to its INVITE transaction,
-- new requests record-routed and relayed statefully to their Request-URI, with branch, onreply and
-- failure routes. There is no registrar here: a request for this proxy itself gets 404.

function ksr_request_route()
	ksr_route_reqinit()

	-- CANCEL goes to the INVITE transaction it cancels (tm answers it and cancels every branch)
	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then
			ksr_route_relay()
		end
		return 1
	end

	-- retransmissions are absorbed by their transaction (the last reply is sent again)
	if not KSR.is_ACK() then
		if KSR.tmx.t_precheck_trans() > 0 then
			KSR.tm.t_check_trans()
			KSR.x.exit()
		end
		if KSR.tm.t_check_trans() == 0 then KSR.x.exit() end
	end

	ksr_route_withindlg()

	-- record routing for dialog forming requests, so that in-dialog requests come back here
	if KSR.is_method_in("IS") then -- INVITE, SUBSCRIBE
		KSR.rr.record_route()
	end

	if KSR.is_myself_ruri() then
		KSR.sl.sl_send_reply(404, "Not Found")
		KSR.x.exit()
	end
	ksr_route_relay()
end

-- per-request initial checks
function ksr_route_reqinit()
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		KSR.x.exit()
	end
	if KSR.is_OPTIONS() and KSR.is_myself_ruri() then
		KSR.sl.sl_send_reply(200, "Keepalive")
		KSR.x.exit()
	end
end

-- requests inside a dialog: follow the Route set the Record-Route built
function ksr_route_withindlg()
	if KSR.siputils.has_totag() < 0 then return 1 end
	if KSR.rr.loose_route() > 0 then
		if KSR.is_BYE() then
			KSR.info("BYE " .. (KSR.rr.is_direction("downstream") > 0 and "from the caller" or "from the callee"))
		end
		ksr_route_relay()
		KSR.x.exit()
	end
	if KSR.is_ACK() then
		if KSR.tm.t_check_trans() > 0 then
			-- no loose-routing, but a stateful ACK: it must be an ACK after a 487 or another negative reply
			KSR.tm.t_relay()
		end
		KSR.x.exit()
	end
	KSR.sl.sl_send_reply(404, "Not here")
	KSR.x.exit()
end

-- stateful relay with the per-transaction routes armed
function ksr_route_relay()
	if KSR.is_method_in("IBSU") then -- INVITE, BYE, SUBSCRIBE, UPDATE
		if KSR.tm.t_is_set("branch_route") < 0 then KSR.tm.t_on_branch("ksr_branch_manage") end
	end
	if KSR.is_method_in("ISU") then
		if KSR.tm.t_is_set("onreply_route") < 0 then KSR.tm.t_on_reply("ksr_onreply_manage") end
	end
	if KSR.is_INVITE() then
		if KSR.tm.t_is_set("failure_route") < 0 then KSR.tm.t_on_failure("ksr_failure_manage") end
	end
	if KSR.tm.t_relay() < 0 then
		KSR.sl.sl_reply_error()
	end
	KSR.x.exit()
end

-- runs for each branch before it is sent
function ksr_branch_manage()
	KSR.dbg("new branch")
end

-- runs for each reply of the transaction
function ksr_onreply_manage()
	KSR.dbg("reply " .. KSR.tm.t_get_status_code())
end

-- runs when every branch failed (negative reply or timeout); may re-route (serial forking)
function ksr_failure_manage()
	if KSR.tm.t_is_canceled() > 0 then return 1 end
	if KSR.tm.t_check_status("408") > 0 and KSR.tm.t_branch_timeout() > 0 then
		KSR.info("no answer in time")
	end
end
