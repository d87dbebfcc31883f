function ksr_request_route()
	-- KSR.sl.in_a_comment() is not checked
	local s = "KSR.nor.in_a_string()"
	KSR.sl.sl_send_replyy(404, "No registrar")
	KSR.is_methodd("REGISTER")
	KSR.nosuch.f()
	KSR.sll.sl_send_reply(200, "OK")
end
