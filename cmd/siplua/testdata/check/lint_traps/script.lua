-- Each trap once; the comments say what siplua -c reports.
FLT_NATS = 5 -- a global at the top level: a constant, fine

function ksr_request_route()
	if KSR.tm.t_check_trans() then -- int as a condition: always true
		return 1
	end
	if not KSR.siputils.has_totag() then -- not int: always false
		KSR.x.exit()
	end
	if KSR.is_INVITE() and KSR.rr.loose_route() then -- int in an and chain
		KSR.tm.t_relay()
	end
	local first = KSR.maxfwd.process_maxfwd(10) > 0 or KSR.siputils.is_first_hop() -- or: right side is a value
	if KSR.maxfwd.process_maxfwd(10) < 0 and first then -- compared: fine
		KSR.sl.sl_send_reply(483, "Too Many Hops")
	end
	KSR.tm.t_on_failure("ksr_failure_rout") -- no such function (a typo)
	KSR.tm.t_on_branch("ksr_branch_manage") -- defined below: fine
	KSR.sl.sl_send_reply(404) -- one argument short
	KSR.sl.sl_send_reply("Not Found", 404) -- arguments swapped: the code is not a number
	KSR.maxfwd.process_maxfwd(nil) -- nil for a number
	KSR.sl.sl_send_reply("404", "Not Found") -- a numeric string is a number for KEMI: fine
	counter = (counter or 0) + 1 -- a global assigned in a route: leaks between messages
	local n = 0
	n = n + 1 -- a local: fine
	for i = 1, 2 do n = n + i end -- a loop variable: fine
	KSR.setflag("NATS") -- a top-level function: a flag is a number
	if KSR.is_myself_ruri() > 0 then n = 2 end -- a boolean compared with a number: a run-time error
	return 1
end

function ksr_branch_manage()
	return 1
end

function ksr_failure_route()
	last_status = KSR.kx.get_status() -- a global again, in another route
end
