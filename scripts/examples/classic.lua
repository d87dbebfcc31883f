-- The classic Kamailio example on its own: every REGISTER is answered "404 No registrar",
-- as route[REGISTRAR] does in kamailio.cfg when no registrar is configured.

function ksr_request_route()
	if KSR.is_method("REGISTER") then
		KSR.sl.sl_send_reply(404, "No registrar")
		KSR.x.exit()
	end
	KSR.sl.sl_send_reply(501, "Not Implemented")
end
