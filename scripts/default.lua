-- siplua default routing script: a small, useful stateless proxy.
--   * Max-Forwards check (483 Too Many Hops)
--   * OPTIONS to the proxy itself: 200 OK (keep-alive pings, monitoring)
--   * REGISTER: 404 "No registrar" (the classic Kamailio example: no location service here)
--   * requests for other domains: forwarded statelessly
--   * anything else for this proxy: 404 Not Found

function ksr_request_route()
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		KSR.x.exit()
	end

	if KSR.is_OPTIONS() and KSR.is_myself_ruri() and KSR.corex.has_ruri_user() < 0 then
		KSR.sl.sl_send_reply(200, "Keepalive")
		KSR.x.exit()
	end

	if KSR.is_REGISTER() then
		KSR.sl.sl_send_reply(404, "No registrar")
		KSR.x.exit()
	end

	if KSR.is_ACK() and not KSR.is_myself_ruri() then
		KSR.forward()
		KSR.x.exit()
	end

	if not KSR.is_myself_ruri() then
		if KSR.forward() < 0 then
			KSR.sl.send_reply(502, "Bad Gateway")
		end
		KSR.x.exit()
	end

	KSR.sl.sl_send_reply(404, "Not Found")
end
