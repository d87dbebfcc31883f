-- A WebRTC edge: browsers (SIP.js, JsSIP) register and call over WebSocket (wss:, ws:) per RFC 7118,
-- phones over UDP, TCP or TLS, with digest authentication. It is scripts/examples/registrar.lua (Kamailio's
-- kamailio-basic-kemi-lua.lua) with the WITH_WEBSOCKETS parts of Kamailio's kamailio.cfg: a WebSocket
-- client is always treated as behind NAT (nat_uac_test 64): REGISTER saves its connection
-- (fix_nated_register), other requests and the replies that come over WebSocket get a Contact alias
-- (add_contact_alias), and in-dialog requests follow it (handle_ruri_alias) back over the very connection.
-- The WebSocket upgrade (path, Origin allow-list, the "sip" subprotocol) is done by siplua's transport,
-- configured in webrtc.toml's [websocket] table, before any SIP message reaches this script.
--
-- Media: browsers talk DTLS-SRTP with ICE; between two browsers it flows end to end. A call between a
-- browser and a plain RTP phone needs a media gateway (rtpengine), which this example does not include.
--
-- Run: siplua -config scripts/examples/webrtc.toml
-- A browser: new SIP.UserAgent({uri: "sip:alice@sip.example", authorizationUsername: "alice",
--   authorizationPassword: "...", transportOptions: {server: "wss://HOST:8443/"}})

FLT_NATS = 5      -- the request came from behind NAT
FLB_NATB = 6      -- branch flag: the contact is behind NAT (usrloc nat_bflag)
FLB_NATSIPPING = 7 -- branch flag: ping it with OPTIONS (nathelper sipping_bflag)

function ksr_request_route()
	ksr_route_reqinit()
	ksr_route_natdetect()

	-- CANCEL processing
	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then
			ksr_route_relay()
		end
		return 1
	end

	-- retransmissions
	if not KSR.is_ACK() then
		if KSR.tmx.t_precheck_trans() > 0 then
			KSR.tm.t_check_trans()
			return 1
		end
		if KSR.tm.t_check_trans() == 0 then return 1 end
	end

	ksr_route_withindlg()

	-- only initial requests (no To tag) from here on
	ksr_route_auth()

	-- record routing for dialog forming requests
	KSR.hdr.remove("Route")
	if KSR.is_method_in("IS") then
		KSR.rr.record_route()
	end

	ksr_route_sipout()
	ksr_route_registrar()

	if KSR.corex.has_ruri_user() < 0 then
		KSR.sl.sl_send_reply(484, "Address Incomplete")
		return 1
	end

	ksr_route_location()
	return 1
end

-- wrapper around tm relay function
function ksr_route_relay()
	if KSR.is_method_in("IBSU") then
		if KSR.tm.t_is_set("branch_route") < 0 then
			KSR.tm.t_on_branch("ksr_branch_manage")
		end
	end
	if KSR.is_method_in("ISU") then
		if KSR.tm.t_is_set("onreply_route") < 0 then
			KSR.tm.t_on_reply("ksr_onreply_manage")
		end
	end
	if KSR.is_INVITE() then
		if KSR.tm.t_is_set("failure_route") < 0 then
			KSR.tm.t_on_failure("ksr_failure_manage")
		end
	end
	if KSR.tm.t_relay() < 0 then
		KSR.sl.sl_reply_error()
	end
	KSR.x.exit()
end

-- per request initial checks
function ksr_route_reqinit()
	KSR.set_reply_no_connect()
	KSR.force_rport()
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		KSR.x.exit()
	end
	if KSR.is_OPTIONS() and KSR.is_myself_ruri() and KSR.corex.has_ruri_user() < 0 then
		KSR.sl.sl_send_reply(200, "Keepalive")
		KSR.x.exit()
	end
end

-- requests within SIP dialogs
function ksr_route_withindlg()
	if KSR.siputils.has_totag() < 0 then return 1 end
	if KSR.rr.loose_route() > 0 then
		ksr_route_dlguri()
		if KSR.is_NOTIFY() then
			KSR.rr.record_route()
		end
		ksr_route_relay()
		KSR.x.exit()
	end
	if KSR.is_ACK() then
		if KSR.tm.t_check_trans() > 0 then
			ksr_route_relay()
		end
		KSR.x.exit()
	end
	KSR.sl.sl_send_reply(404, "Not here")
	KSR.x.exit()
end

-- registrations
function ksr_route_registrar()
	if not KSR.is_REGISTER() then return 1 end
	if KSR.isflagset(FLT_NATS) then
		KSR.setbflag(FLB_NATB)
		KSR.setbflag(FLB_NATSIPPING)
	end
	if KSR.registrar.save("location", 0) < 0 then
		KSR.sl.sl_reply_error()
	end
	KSR.x.exit()
end

-- user location service
function ksr_route_location()
	local rc = KSR.registrar.lookup("location")
	if rc < 0 then
		KSR.tm.t_newtran()
		if rc == -1 or rc == -3 then
			KSR.sl.send_reply(404, "Not Found")
			KSR.x.exit()
		elseif rc == -2 then
			KSR.sl.send_reply(405, "Method Not Allowed")
			KSR.x.exit()
		end
	end
	ksr_route_relay()
	KSR.x.exit()
end

-- user authentication: REGISTER and calls from local users
function ksr_route_auth()
	if not KSR.auth then
		return 1
	end
	if KSR.is_REGISTER() or KSR.is_myself_furi() then
		if KSR.auth_db.auth_check(KSR.kx.gete_fhost(), "subscriber", 1) < 0 then
			KSR.auth.auth_challenge(KSR.kx.gete_fhost(), 0)
			KSR.x.exit()
		end
		-- authenticated: do not pass the credentials on
		if not KSR.is_method_in("RP") then
			KSR.auth.consume_credentials()
		end
	end
	-- not an open relay: a caller who is not local calls a local destination only
	if (not KSR.is_myself_furi()) and (not KSR.is_myself_ruri()) then
		KSR.sl.sl_send_reply(403, "Not relaying")
		KSR.x.exit()
	end
	return 1
end

-- caller NAT detection
function ksr_route_natdetect()
	if not KSR.nathelper then
		return 1
	end
	if KSR.nathelper.nat_uac_test(64) > 0 then
		-- WebSocket: the client's Via and Contact name "*.invalid"; the connection is the only way back
		if KSR.is_REGISTER() then
			KSR.nathelper.fix_nated_register()
		elseif KSR.hdr.is_present("Contact") > 0 and KSR.nathelper.add_contact_alias() < 0 then
			KSR.sl.sl_send_reply(400, "Bad Request")
			KSR.x.exit()
		end
		KSR.setflag(FLT_NATS)
		return 1
	end
	if KSR.nathelper.nat_uac_test(19) > 0 then
		if KSR.is_REGISTER() then
			KSR.nathelper.fix_nated_register()
		elseif KSR.siputils.is_first_hop() > 0 then
			KSR.nathelper.set_contact_alias()
		end
		KSR.setflag(FLT_NATS)
	end
	return 1
end

-- URI update for dialog requests
function ksr_route_dlguri()
	if not KSR.nathelper then
		return 1
	end
	if not KSR.isdsturiset() then
		KSR.nathelper.handle_ruri_alias()
	end
	return 1
end

-- routing to foreign domains
function ksr_route_sipout()
	if KSR.is_myself_ruri() then return 1 end
	KSR.hdr.append("P-Hint: outbound\r\n")
	ksr_route_relay()
	KSR.x.exit()
end

-- outgoing branches
function ksr_branch_manage()
	KSR.dbg("new branch [" .. KSR.pv.get("$T_branch_idx") .. "] to " .. KSR.kx.get_ruri() .. "\n")
	return 1
end

-- incoming replies
function ksr_onreply_manage()
	local scode = KSR.kx.get_status()
	if KSR.nathelper and KSR.nathelper.nat_uac_test(64) > 0 then
		-- a reply from a browser (callee on WebSocket): its Contact is reachable only over the connection
		KSR.nathelper.add_contact_alias()
	elseif scode > 100 and scode < 299 and KSR.isbflagset(FLB_NATB) and KSR.nathelper then
		KSR.nathelper.set_contact_alias()
	end
	return 1
end

-- failure routing
function ksr_failure_manage()
	if KSR.tm.t_is_canceled() > 0 then
		return 1
	end
	return 1
end
