-- The htable part of scripts/examples/loadbalancer.lua: a source address that sends more than BAN_LIMIT
-- requests within 10 s is banned for 5 minutes; its requests are dropped without an answer (an attacker
-- learns nothing). The tables, in the example's TOML:
--
--   [modules.htable]
--   [modules.htable.tables.ipban]   # banned addresses, forgotten after 5 minutes
--   autoexpire = 300
--   [modules.htable.tables.rate]    # requests per address in a 10 s window counted from the first one
--   autoexpire = 10
--   updateexpire = false
--   initval = 0
--
-- Both tables are shared by every worker and survive a restart (snapshot_file); with backend = "redis"
-- they are shared by every node of the cluster. Unban by hand: siplua ctl htable.delete ipban 192.0.2.1
local BAN_LIMIT = 50

local function route_ipban()
	local src = KSR.kx.get_srcip()
	if KSR.htable.sht_get("ipban", src) ~= nil then
		KSR.x.drop()
	end
	if KSR.htable.sht_inc("rate", src) > BAN_LIMIT then
		KSR.htable.sht_seti("ipban", src, 1)
		KSR.log("warn", "htable: banning " .. src .. " for 300 s\n")
		KSR.x.drop()
	end
end
