-- Example: routing decided by an HTTP service, without holding a route worker while it answers.
-- The service gets GET /route?user=USER and answers the destination URI (e.g. "sip:10.0.0.7:5060") in the
-- body; the INVITE's transaction is suspended meanwhile (KSR.http_async_client.query) and ksr_http_route
-- continues it with the answer. Run: siplua -config httproute.toml

function ksr_request_route()
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		return 1
	end
	if KSR.siputils.has_totag() > 0 then
		if KSR.rr.loose_route() > 0 then KSR.tm.t_relay() end
		return 1
	end
	if KSR.is_CANCEL() or KSR.is_ACK() then
		if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
		return 1
	end
	if KSR.tm.t_check_trans() == 0 then return 1 end -- a retransmission, answered by tm
	if KSR.is_INVITE() then
		KSR.rr.record_route()
		local url = "http://127.0.0.1:8080/route?user=" .. KSR.pv.get("$rU")
		if KSR.http_async_client.query(url, "ksr_http_route") == 0 then
			return 1 -- the transaction is parked; ksr_http_route continues it
		end
		KSR.sl.sl_send_reply(500, "Routing query failed")
		return 1
	end
	KSR.sl.sl_send_reply(405, "Method Not Allowed")
end

-- Runs on a worker once the service answered (or failed, or timed out).
function ksr_http_route()
	if KSR.pv.get("$http_ok") == 1 and KSR.pv.get("$http_rs") == 200 then
		KSR.pv.sets("$du", KSR.pv.get("$http_rb"))
		KSR.tm.t_relay()
	else
		KSR.tm.t_reply(503, "Routing service unavailable")
	end
end
