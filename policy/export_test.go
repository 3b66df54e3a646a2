package policy

// DecodeForTest is decode, for the tests of package policy_test.
var DecodeForTest = decode
