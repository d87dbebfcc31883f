-- a top-level chunk that never ends is rejected once route_timeout is spent
local n = 0
while true do n = n + 1 end

function ksr_request_route()
	KSR.sl.sl_send_reply(404, "Not Found")
end
