//! Finding the real servers that server-backed tests run against.

/// The value of the environment variable `var` (for example
/// `KCL_TEST_REDIS_URL`), which names a server for a test to use.
///
/// When it is unset the test should skip: this prints a line saying so and
/// returns `None`, unless `KCL_TEST_REQUIRE_SERVERS=1` is set (as the
/// README's test command and CI set it), in which case it panics, so a
/// suite can never pass by skipping.
///
/// ```no_run
/// if let Some(url) = kcl_core::testkit::server_from_env("KCL_TEST_EXAMPLE_URL") {
///     // connect to `url` and test
/// # let _ = url;
/// }
/// ```
pub fn server_from_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var("KCL_TEST_REQUIRE_SERVERS").as_deref() == Ok("1") => {
            panic!("{var} is not set and KCL_TEST_REQUIRE_SERVERS=1: run scripts/test-all.sh")
        }
        _ => {
            eprintln!("skipping: {var} is not set (scripts/test-all.sh sets it)");
            None
        }
    }
}
