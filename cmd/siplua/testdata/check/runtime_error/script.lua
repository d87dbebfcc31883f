local limits = nil
local max = limits.max_forwards

function ksr_request_route()
	KSR.sl.sl_send_reply(404, "Not Found")
end
