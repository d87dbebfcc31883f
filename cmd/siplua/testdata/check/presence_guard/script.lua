-- optional modules checked for presence, as Kamailio's kamailio-basic-kemi-lua.lua does: not reported
function ksr_route_natmanage()
	if not KSR.rtpproxy then
		return 1
	end
	KSR.rtpproxy.rtpproxy_manage("co")
	if KSR.auth and KSR.auth.consume_credentials() < 0 then return 1 end
end

function ksr_request_route()
	ksr_route_natmanage()
	-- a loaded module is still checked, and an unguarded unknown module too
	KSR.sl.sl_send_replyy(200, "OK")
	KSR.dialog.dlg_manage()
end
