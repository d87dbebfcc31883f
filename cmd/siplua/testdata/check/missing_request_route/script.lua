function ksr_reqest_route()
	KSR.sl.sl_send_reply(404, "Not Found")
end
