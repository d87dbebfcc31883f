package luabind

// kamailioRC is the meaning of the return value of functions whose module source does not spell it out,
// from Kamailio's module documentation, for the doc comments of the stubs.
var kamailioRC = map[string]string{
	"registrar.lookup":                 "Kamailio: 1 contacts found (the R-URI is the first contact, $du its received/path); -1 no contact (not registered, or expired); -2 contacts found but none accepts the method (method_filtering); -3 internal error.",
	"registrar.lookup_uri":             "Kamailio: as lookup, for the AOR of uri: 1 found; -1 no contact; -2 method not accepted; -3 internal error.",
	"registrar.save":                   "Kamailio: 1 the bindings were updated and the reply sent; < 0 error (answer it with KSR.sl.sl_reply_error()).",
	"registrar.save_uri":               "Kamailio: as save, for the AOR of uri: 1 saved; < 0 error.",
	"tm.t_relay":                       "Kamailio: 1 the request was sent on statefully (its transaction exists); < 0 it could not be (no reply was sent: answer with KSR.sl.sl_reply_error()).",
	"rr.record_route":                  "Kamailio: 1 a Record-Route header was added; -1 error.",
	"siputils.has_totag":               "Kamailio: 1 the To header has a tag (a request within a dialog); -1 it has none (an initial request).",
	"dispatcher.ds_select_dst":         "Kamailio: 1 a destination of the set is in $du (the others are kept for ds_next_dst); -1 no active destination in the set.",
	"dispatcher.ds_next_dst":           "Kamailio: 1 the next destination is in $du; -1 none is left.",
	"permissions.allow_source_address": "Kamailio: 1 the source address (and port) is in the group; -1 it is not.",
	"sl.sl_send_reply":                 "Kamailio: 1 the reply was sent; -1 error.",
	"sl.send_reply":                    "Kamailio: 1 the reply was sent (through the transaction when there is one); -1 error.",
}
