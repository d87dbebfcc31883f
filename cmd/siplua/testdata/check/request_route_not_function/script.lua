ksr_request_route = "route"
