//! Object store URIs from any text: parsing never panics, secrets never show
//! in the redacted form, and every parsed part round-trips through it.

use proptest::prelude::*;
use teleport::blob::BlobUri;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_text_parses_or_errors_without_panic(s in ".{0,200}") {
        if let Ok(u) = BlobUri::parse(&s, "audit_sessions_uri") {
            let _ = u.redacted();
            let _ = u.prefix();
            let _ = u.flag("insecure");
        }
    }

    #[test]
    fn secrets_never_show(
        scheme in prop::sample::select(vec!["s3", "gs", "azblob", "azblob-http", "file"]),
        host in "[a-z0-9.-]{0,20}",
        path in "(/[a-z0-9%+ ]{0,8}){0,3}",
        secret in "[A-Za-z0-9/+=]{12,40}",
        name in prop::sample::select(vec!["secret_key", "access_key", "sig", "token", "password", "AccountKey"]),
        in_fragment in any::<bool>(),
    ) {
        let uri = if in_fragment {
            format!("{scheme}://{host}{path}?region=us-east-1#session_container=s&{name}={secret}")
        } else {
            format!("{scheme}://{host}{path}?region=us-east-1&{name}={secret}#session_container=s")
        };
        let u = BlobUri::parse(&uri, "x").unwrap();
        let shown = u.redacted();
        prop_assert!(!shown.contains(&secret), "{shown}");
        prop_assert!(shown.contains("REDACTED"));
        prop_assert!(shown.contains("region=us-east-1") && shown.contains("session_container=s"));
        let debug = format!("{:?}", u);
        prop_assert!(!debug.contains(&secret), "{}", debug);
    }
}
