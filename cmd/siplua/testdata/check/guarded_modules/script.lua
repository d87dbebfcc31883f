function ksr_request_route()
	ksr_route_auth()
	ksr_route_nat()
	if KSR.permissions and not KSR.is_REGISTER() then
		if KSR.permissions.allow_source_address(1) > 0 then return 1 end
	end
	local banned = KSR.htable and KSR.htable.sht_get("ipban", "x") ~= nil
	if not KSR.rtpproxy or KSR.rtpproxy.rtpproxy_manage("co") > 0 then
		KSR.sl.sl_send_reply(200, "OK")
	end
	if KSR.nathelper then
		KSR.nathelper.fix_nated_register()
	else
		KSR.sl.sl_send_reply(200, "no NAT helper")
	end
	KSR.pike.pike_check_req() -- not guarded: pike is not loaded, reported
	return 1
end

function ksr_route_auth()
	if not KSR.auth then
		return 1
	end
	if KSR.auth_db.auth_check(KSR.kx.gete_fhost(), "subscriber", 1) < 0 then
		KSR.auth.auth_challenge(KSR.kx.gete_fhost(), 0)
		KSR.x.exit()
	end
	return 1
end

function ksr_route_nat()
	if not KSR.rtpproxy then
		KSR.x.exit()
	end
	KSR.rtpproxy.rtpproxy_manage("co")
end
