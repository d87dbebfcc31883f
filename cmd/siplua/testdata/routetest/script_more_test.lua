-- picked up as a test file of script.lua too (NAME_*_test.lua)
function test_only_passes()
	siptest.eq(siptest.run(siptest.request{method = "OPTIONS"}).status, 200)
end
