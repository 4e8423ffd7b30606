//! Redis errors as [`BackendError`]s a caller can act on.

use cachekit_core::{sanitize_server_text, BackendError, ErrorKind};
use redis::RedisError;

/// The kind a Redis error code (the first word of a `-ERR`-style reply) stands for.
pub(crate) fn kind_of_code(code: &str) -> ErrorKind {
    match code {
        // No or wrong credentials, or an ACL user without the command or key.
        "NOAUTH" | "WRONGPASS" | "NOPERM" => ErrorKind::Auth,
        // The server is up but cannot take this now; the same call may succeed later:
        // memory full under `noeviction`, loading a dump, a busy script, a replica that
        // lost its primary, a failed background save refusing writes, a read-only replica.
        "OOM" | "LOADING" | "BUSY" | "MASTERDOWN" | "MISCONF" | "READONLY" | "TRYAGAIN"
        | "CLUSTERDOWN" => ErrorKind::Unavailable,
        // Someone stored a list, hash, … under this key: not a value we wrote.
        "WRONGTYPE" => ErrorKind::Protocol,
        _ => ErrorKind::Other,
    }
}

/// Whether `err` is a TLS handshake that failed because the server's certificate is not
/// trusted (unknown issuer, wrong name, expired).
fn refused_certificate(err: &RedisError) -> bool {
    let Some(source) = std::error::Error::source(err) else {
        return false;
    };
    let io = source
        .downcast_ref::<std::sync::Arc<dyn std::error::Error + Send + Sync>>()
        .and_then(|shared| (**shared).downcast_ref::<std::io::Error>())
        .or_else(|| source.downcast_ref::<std::io::Error>());
    io.and_then(std::io::Error::get_ref)
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|tls| {
            matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        })
}

/// Maps `err`, from `operation`, to a [`BackendError`] whose message carries the server's
/// own words with the password removed by `redact`.
pub(crate) fn classify(
    operation: &str,
    err: &RedisError,
    redact: impl Fn(&str) -> String,
) -> BackendError {
    let message = redact(&format!(
        "redis {operation}: {}",
        sanitize_server_text(&err.to_string())
    ));
    let kind = if err.is_timeout() {
        ErrorKind::Timeout
    } else if refused_certificate(err) {
        // The server could not prove who it is: trying again will not change that.
        ErrorKind::Auth
    } else if let Some(code) = err.code() {
        match code {
            "MOVED" | "ASK" | "CROSSSLOT" => {
                return BackendError::new(
                    ErrorKind::Other,
                    format!("{message} (this backend talks to one Redis node, not a cluster; point it at a standalone server or a proxy)"),
                )
            }
            _ => kind_of_code(code),
        }
    } else {
        match err.kind() {
            redis::ErrorKind::AuthenticationFailed => ErrorKind::Auth,
            redis::ErrorKind::Io => ErrorKind::Unavailable,
            redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType => ErrorKind::Protocol,
            redis::ErrorKind::InvalidClientConfig => ErrorKind::InvalidArgument,
            _ => ErrorKind::Other,
        }
    };
    BackendError::new(kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::no_credentials("NOAUTH", ErrorKind::Auth)]
    #[case::wrong_password("WRONGPASS", ErrorKind::Auth)]
    #[case::acl_refuses("NOPERM", ErrorKind::Auth)]
    #[case::out_of_memory("OOM", ErrorKind::Unavailable)]
    #[case::loading_a_dump("LOADING", ErrorKind::Unavailable)]
    #[case::busy_script("BUSY", ErrorKind::Unavailable)]
    #[case::primary_down("MASTERDOWN", ErrorKind::Unavailable)]
    #[case::failed_save("MISCONF", ErrorKind::Unavailable)]
    #[case::read_only_replica("READONLY", ErrorKind::Unavailable)]
    #[case::try_again("TRYAGAIN", ErrorKind::Unavailable)]
    #[case::cluster_down("CLUSTERDOWN", ErrorKind::Unavailable)]
    #[case::not_a_string("WRONGTYPE", ErrorKind::Protocol)]
    #[case::generic("ERR", ErrorKind::Other)]
    #[case::unknown("SOMETHINGNEW", ErrorKind::Other)]
    fn server_codes_map_to_kinds(#[case] code: &str, #[case] kind: ErrorKind) {
        assert_eq!(kind_of_code(code), kind);
    }

    fn server_error(code: &str, detail: &str) -> RedisError {
        redis::make_extension_error(code.to_owned(), Some(detail.to_owned()))
    }

    #[test]
    fn the_servers_words_are_kept_and_the_password_is_not() {
        let err = server_error("WRONGPASS", "invalid username-password pair for hunter2");
        let mapped = classify("GET", &err, |text| text.replace("hunter2", "***"));
        assert_eq!(mapped.kind(), ErrorKind::Auth);
        assert!(mapped.message().contains("invalid username-password pair"));
        assert!(!mapped.message().contains("hunter2"));
    }

    #[test]
    fn a_cluster_redirect_says_what_to_do() {
        let mapped = classify(
            "SET",
            &server_error("MOVED", "3999 127.0.0.1:6381"),
            str::to_owned,
        );
        assert_eq!(mapped.kind(), ErrorKind::Other);
        assert!(mapped.message().contains("not a cluster"));
    }

    #[rstest]
    #[case::refused(std::io::ErrorKind::ConnectionRefused, ErrorKind::Unavailable)]
    #[case::reset(std::io::ErrorKind::ConnectionReset, ErrorKind::Unavailable)]
    #[case::eof(std::io::ErrorKind::UnexpectedEof, ErrorKind::Unavailable)]
    #[case::timed_out(std::io::ErrorKind::TimedOut, ErrorKind::Timeout)]
    fn io_errors_map_to_kinds(#[case] io: std::io::ErrorKind, #[case] kind: ErrorKind) {
        let err = RedisError::from(std::io::Error::from(io));
        assert_eq!(classify("GET", &err, str::to_owned).kind(), kind);
    }
}
