function ksr_request_route()
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		KSR.x.exit()
	end
	KSR.siputils.has_totag()
	KSR.maxfwd.process_maxfwdd(10)
end
