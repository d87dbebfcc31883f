function ksr_request_route()
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		KSR.x.exit()
	end
	if KSR.is_REGISTER() then
		KSR.sl.sl_send_reply(404, "No registrar")
		KSR.x.exit()
	end
	KSR.sl.sl_send_reply(404, "Not Found")
end
