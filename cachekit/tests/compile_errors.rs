//! Misuses of `#[cachekit::cache]` fail to compile with a message that says what to do.
//! The expected messages are the `.stderr` files beside each case.

#[test]
fn misuses_are_clear_compile_errors() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
