//! Passwords, tokens and TOTP.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::crypto::secret::hotp;
use crate::crypto::{
    constant_time_eq, hash_password, hash_password_with_cost, random_token, totp_code, totp_generate_secret,
    totp_verify, verify_password,
};

/// The test cost: bcrypt's minimum, so the suite stays fast.
const COST: u32 = 4;

#[test]
fn default_cost_is_upstreams() {
    let hash = hash_password("correct horse battery staple").unwrap();
    assert!(hash.starts_with(b"$2b$10$"), "{}", String::from_utf8_lossy(&hash));
    assert_eq!(hash.len(), 60);
}

#[test]
fn passwords_verify_and_mismatches_do_not() {
    let hash = hash_password_with_cost("hunter2", COST).unwrap();
    assert!(hash.starts_with(b"$2b$04$"));
    assert!(verify_password("hunter2", &hash));
    assert!(!verify_password("hunter3", &hash));
    assert!(!verify_password("", &hash));
    // Go writes the $2a$ prefix; the algorithm is the same.
    let go_style = String::from_utf8(hash.clone()).unwrap().replacen("$2b$", "$2a$", 1);
    assert!(verify_password("hunter2", go_style.as_bytes()));
    // Two hashes of one password differ (random salt).
    assert_ne!(hash, hash_password_with_cost("hunter2", COST).unwrap());
}

#[test]
fn bad_passwords_and_hashes_are_refused() {
    let err = hash_password_with_cost("", COST).unwrap_err();
    assert_eq!(err.to_string(), "password: is empty");
    let err = hash_password_with_cost(&"x".repeat(73), COST).unwrap_err();
    assert!(err.to_string().contains("73 bytes long; bcrypt allows at most 72"), "{err}");
    assert!(hash_password_with_cost(&"x".repeat(72), COST).is_ok());
    let err = hash_password_with_cost("pw", 3).unwrap_err();
    assert!(err.to_string().contains("bcrypt cost"), "{err}");

    for garbage in [&b""[..], b"$2b$", b"\xff\xfe", b"$2b$04$short", &[b'$'; 60], b"plain text password"] {
        assert!(!verify_password("pw", garbage));
    }
    // A plausible hash with an absurd cost is refused without hashing.
    let absurd = "$2b$31$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234";
    assert_eq!(absurd.len(), 60);
    assert!(!verify_password("pw", absurd.as_bytes()));
}

#[test]
fn constant_time_eq_compares() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"abcd"));
    assert!(constant_time_eq(b"", b""));
}

#[test]
fn tokens_are_32_random_bytes_hex() {
    let a = random_token().unwrap();
    let b = random_token().unwrap();
    assert_eq!(a.len(), 64);
    assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_ne!(a, b);
}

/// RFC 6238, appendix B, SHA-1 rows: the seed is ASCII "12345678901234567890".
#[test]
fn totp_matches_rfc_6238_vectors() {
    let seed = b"12345678901234567890";
    let secret = data_encoding::BASE32_NOPAD.encode(seed);
    assert_eq!(secret, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    for (t, eight) in [
        (59u64, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ] {
        assert_eq!(hotp(seed, t / 30, 8), eight, "T={t}");
        let at = UNIX_EPOCH + Duration::from_secs(t);
        assert_eq!(totp_code(&secret, at).unwrap(), eight[2..], "T={t}");
        assert!(totp_verify(&secret, &eight[2..], at));
    }
    // Lower case, spaces and padding in the secret are tolerated.
    let at = UNIX_EPOCH + Duration::from_secs(59);
    assert_eq!(totp_code("gezd gnbv gy3t qojq gezd gnbv gy3t qojq====", at).unwrap(), "287082");
}

#[test]
fn totp_accepts_one_step_of_skew_and_no_more() {
    let secret = totp_generate_secret().unwrap();
    assert_eq!(secret.len(), 32);
    assert!(secret.bytes().all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c)));
    let now = SystemTime::now();
    let code = totp_code(&secret, now).unwrap();
    assert_eq!(code.len(), 6);
    let step = Duration::from_secs(30);
    assert!(totp_verify(&secret, &code, now));
    assert!(totp_verify(&secret, &code, now + step));
    assert!(totp_verify(&secret, &code, now - step));
    // Two steps later the window is steps +1..=+3: the code passes only if
    // one of those happens to have the same code (one in a million).
    let later = now + 2 * step;
    let collides = (1..=3u32).any(|k| totp_code(&secret, now + k * step).unwrap() == code);
    assert_eq!(totp_verify(&secret, &code, later), collides);

    assert!(!totp_verify(&secret, "12345", now));
    assert!(!totp_verify(&secret, "1234567", now));
    assert!(!totp_verify(&secret, "12a456", now));
    assert!(!totp_verify("not base32!", &code, now));
    assert!(!totp_verify("", &code, now));
    let err = totp_code("1890", now).unwrap_err();
    assert!(err.to_string().starts_with("TOTP secret: is not valid base32"), "{err}");
}
