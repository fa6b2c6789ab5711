-- A Prosody module for the e2e tests: while the file named by the option
-- mam_fail_flag exists, the next XEP-0313 query is answered with an error
-- (RFC 6120 §8.3.3.18 resource-constraint) and the file is removed, so the
-- test knows the error went out and the archive works again from then on.
local st = require "util.stanza";
local flag = module:get_option_string("mam_fail_flag");

module:hook("iq-set/self/urn:xmpp:mam:2:query", function(event)
	local f = io.open(flag);
	if not f then return; end
	f:close();
	os.remove(flag);
	module:log("info", "answering a MAM query with an error (test)");
	event.origin.send(st.error_reply(event.stanza, "wait", "resource-constraint",
		"the archive fails once (test)"));
	return true;
end, 100);
