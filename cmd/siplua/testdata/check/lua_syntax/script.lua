function ksr_request_route()
	if KSR.is_REGISTER() then
		KSR.sl.sl_send_reply(404, "No registrar")
	end
	local x = = 1
end
