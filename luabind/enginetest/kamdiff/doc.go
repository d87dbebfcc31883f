// Package kamdiff holds the differential test: the same Lua script on Kamailio 5.6 (app_lua) and on
// siplua, the same raw requests and transaction scenarios, compared on the wire and value by value.
package kamdiff
