function ksr_request_route()
	if KSR.is_method("NOTIFY") then
		while true do end -- overruns route_timeout
	end
	if KSR.is_method("BYE") then
		local t = nil
		t.x = 1 -- a script error
	end
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		KSR.x.exit()
	end
	if KSR.htable.sht_get("seen", KSR.kx.get_srcip()) ~= nil then
		KSR.x.drop()
	end
	KSR.pv.sets("$var(route)", "main")
	KSR.info("routing " .. KSR.pv.get("$rm") .. " from " .. KSR.pv.get("$si"))
	if not KSR.is_myself_ruri() then
		KSR.pv.sets("$du", "sip:192.0.2.200:5090;transport=tcp")
		KSR.forward()
		return
	end
	KSR.sl.sl_send_reply(200, "OK")
end
