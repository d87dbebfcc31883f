KSR.sl.sl_send_replyy(200, "at load")

function ksr_reqest_route()
	KSR.maxfwd.process_maxfwd(10)
	KSR.sl.sl_send_replyy(404, "Not Found")
end
