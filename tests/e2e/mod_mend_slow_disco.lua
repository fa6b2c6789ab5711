-- A Prosody module for the e2e tests, loaded on the MUC component: a disco#info query
-- (XEP-0030 §3.1) to a room whose name starts with "slow" is held until the file named by
-- the option slow_disco_flag exists, then answered as usual, so a test decides when the
-- room's features become known.
local flag = module:get_option_string("slow_disco_flag");
local event_name = "iq-get/bare/http://jabber.org/protocol/disco#info:query";
local released = setmetatable({}, { __mode = "k" });

local function flag_exists()
	local f = io.open(flag);
	if f then f:close(); end
	return f ~= nil;
end

module:hook(event_name, function(event)
	local node = (event.stanza.attr.to or ""):match("^([^@]*)@");
	if released[event.stanza] or not node or node:sub(1, 4) ~= "slow" or flag_exists() then
		return;
	end
	module:log("info", "holding a disco#info query to %s (test)", event.stanza.attr.to);
	module:add_timer(0.1, function()
		if not flag_exists() then return 0.1; end
		released[event.stanza] = true;
		module:fire_event(event_name, event);
	end);
	return true;
end, 100);
