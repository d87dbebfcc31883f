---@meta
-- siptest: the table of `siplua test` route tests (NAME_test.lua next to NAME.lua), for Lua language
-- servers. Hand-written; luabind/routetest implements it (README, "Testing your routes").

---@class siptest.Sent
---@field raw string the message as it would be sent
---@field status integer|nil a reply's status code
---@field reason string|nil a reply's reason phrase
---@field method string|nil a request's method
---@field ruri string|nil a request's Request-URI
---@field dst string where it goes: "udp:192.0.2.20:5062"
---@field host string
---@field port integer
---@field proto string "udp" or "tcp"
---@field body string
---@field headers string[][] {{name, value}, ...} in order
---@field header fun(name: string): string|nil the first value of a header (compact names too)
---@field hdrs fun(name: string): string[] every value of a header

---@class siptest.Result
---@field status integer|nil the status of `reply`
---@field reason string|nil
---@field reply siptest.Sent|nil the last final reply sent, else the last provisional one
---@field replies siptest.Sent[] every reply sent, in order
---@field relay siptest.Sent|nil the first request sent on
---@field relays siptest.Sent[] every request sent on (branches, tm's ACKs, a failure route's new branch)
---@field exit boolean the route ended with KSR.x.exit()
---@field drop boolean the message was dropped
---@field ruri string|nil the Request-URI after the route
---@field du string|nil $du after the route
---@field branches {uri: string, du: string|nil, q: integer}[] the extra branches
---@field logs {level: string, msg: string, module: string}[] the log lines of the route
---@field log_text string the log messages, one a line
---@field error string|nil the script error, with allow_error
---@field pv fun(spec: string): string|integer|nil a pseudo-variable after the route
---@field flag fun(n: integer): boolean whether message flag n is set
---@field logged fun(pattern: string): boolean whether a log line matches a Lua pattern

---@class siptest.Msg
---@field raw string
---@field from_ip string
---@field from_port string
---@field proto string

---@class siptest.RequestSpec
---@field method string|nil default OPTIONS
---@field ruri string|nil default sip:bob@<proxy> (sip:<proxy> for REGISTER and OPTIONS)
---@field from string|nil default sip:alice@<proxy>
---@field to string|nil default the R-URI (From for REGISTER)
---@field to_tag string|nil a To tag: a request within a dialog
---@field cseq integer|nil default 1
---@field headers table<string, string|string[]|false>|string[][]|nil replace (false: remove) or add headers
---@field body string|nil with Content-Type application/sdp unless headers set one
---@field from_ip string|nil default 192.0.2.10
---@field from_port integer|nil default 5060
---@field proto string|nil "udp" (default) or "tcp"

siptest = {}

---A request as a phone sends it, every mandatory header filled in.
---@param spec siptest.RequestSpec
---@return siptest.Msg
function siptest.request(spec) end

---A message as written (LF or CRLF, indentation removed, Content-Length set).
---@param text string
---@param opts {from_ip: string|nil, from_port: integer|nil, proto: string|nil}|nil
---@return siptest.Msg
function siptest.raw(text, opts) end

---Routes a message through the script and its modules, offline. A route over route_timeout or a script
---error fails the test (unless allow_error).
---@param msg siptest.Msg
---@param opts {allow_error: boolean|nil}|nil
---@return siptest.Result
function siptest.run(msg, opts) end

---The next hop answers a relayed request; returns what routing that reply did.
---@param relay siptest.Sent
---@param code integer
---@param reason string|nil
---@param headers table<string, string>|nil
---@return siptest.Result
function siptest.reply(relay, code, reason, headers) end

---A module's control command (ul.add, htable.seti, dispatcher.set_state ...), to seed state.
---@param command string
---@param ... string|integer
---@return any
function siptest.ctl(command, ...) end

---The credentials answering result.reply's 401/407 challenge, as a headers table.
---@param result siptest.Result
---@param user string
---@param password string
---@param opts {algorithm: string|nil, uri: string|nil}|nil
---@return table<string, string>
function siptest.digest(result, user, password, opts) end

---Fails the test unless got == want: "file:line: expected WANT, got GOT (note)".
---@param got any
---@param want any
---@param note string|nil
function siptest.eq(got, want, note) end

---Fails the test unless v is neither nil nor false.
---@param v any
---@param note string|nil
function siptest.ok(v, note) end

---Fails the test unless s matches the Lua pattern.
---@param s any
---@param pattern string
---@param note string|nil
function siptest.match(s, pattern, note) end

---Fails the test.
---@param msg string|nil
function siptest.fail(msg) end

---A note shown with -v or when the test fails.
---@param ... any
function siptest.log(...) end
