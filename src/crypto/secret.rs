//! SECRETS: password hashes, random tokens, TOTP codes and constant-time
//! comparison.
//!
//! - Passwords are hashed with bcrypt, cost 10 as upstream (Go's
//!   `bcrypt.DefaultCost`). New hashes use the `$2b$` prefix; upstream's
//!   `$2a$` hashes verify as well.
//! - TOTP follows RFC 6238 as upstream's authenticator apps expect it:
//!   HMAC-SHA-1, 6 digits, 30-second steps, and one step of clock skew
//!   accepted either way. Secrets are base32 without padding.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::CryptoError;

/// The bcrypt cost of new password hashes (upstream's).
pub const DEFAULT_BCRYPT_COST: u32 = 10;

/// The bcrypt cost range.
const BCRYPT_MIN_COST: u32 = 4;
const BCRYPT_MAX_COST: u32 = 31;

/// bcrypt reads at most this many bytes of a password.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// Stored hashes with a higher cost are refused by [`verify_password`]: one
/// check would take minutes and stall the auth service.
pub const MAX_VERIFY_COST: u32 = 20;

/// TOTP step length, in seconds.
pub const TOTP_STEP_SECS: u64 = 30;

/// TOTP code length, in digits.
pub const TOTP_DIGITS: u32 = 6;

/// Bytes of a TOTP secret (160 bits, as RFC 4226 recommends).
const TOTP_SECRET_BYTES: usize = 20;

/// Hashes a password with bcrypt at [`DEFAULT_BCRYPT_COST`]; returns the
/// hash as stored (`$2b$10$...`, 60 bytes).
pub fn hash_password(password: &str) -> Result<Vec<u8>, CryptoError> {
    hash_password_with_cost(password, DEFAULT_BCRYPT_COST)
}

/// Hashes a password with bcrypt at `cost` (4 to 31). Refuses an empty
/// password, and one longer than 72 bytes (bcrypt would ignore the rest).
pub fn hash_password_with_cost(password: &str, cost: u32) -> Result<Vec<u8>, CryptoError> {
    check_password(password)?;
    if !(BCRYPT_MIN_COST..=BCRYPT_MAX_COST).contains(&cost) {
        return Err(CryptoError::input(
            "bcrypt cost",
            format!("{cost} is out of range; expected {BCRYPT_MIN_COST} to {BCRYPT_MAX_COST}"),
        ));
    }
    let parts = bcrypt::hash_with_result(password, cost).map_err(|e| match e {
        bcrypt::BcryptError::Rand(_) => CryptoError::Random { what: "bcrypt salt".to_string() },
        other => CryptoError::sign("password hash", other),
    })?;
    Ok(parts.format_for_version(bcrypt::Version::TwoB).into_bytes())
}

/// True when `password` matches the bcrypt `hash`. False for anything else:
/// a wrong password, an empty or over-long one, a hash that is not bcrypt,
/// or a hash whose cost is above [`MAX_VERIFY_COST`]. Never panics.
pub fn verify_password(password: &str, hash: &[u8]) -> bool {
    if check_password(password).is_err() {
        return false;
    }
    let Ok(hash) = std::str::from_utf8(hash) else {
        return false;
    };
    let Ok(parts) = hash.parse::<bcrypt::HashParts>() else {
        return false;
    };
    if parts.get_cost() > MAX_VERIFY_COST {
        tracing::warn!(cost = parts.get_cost(), "refusing to check a password against a bcrypt hash of excessive cost");
        return false;
    }
    bcrypt::verify(password, hash).unwrap_or(false)
}

fn check_password(password: &str) -> Result<(), CryptoError> {
    if password.is_empty() {
        return Err(CryptoError::input("password", "is empty"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(CryptoError::input(
            "password",
            format!("is {} bytes long; bcrypt allows at most {MAX_PASSWORD_BYTES}", password.len()),
        ));
    }
    Ok(())
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// A new random token: 32 random bytes, hex (64 characters).
pub fn random_token() -> Result<String, CryptoError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    super::fill_random("token", bytes.as_mut())?;
    Ok(hex::encode(bytes.as_ref()))
}

/// A new TOTP secret: 20 random bytes, base32 without padding (32
/// characters), as authenticator apps take it.
pub fn totp_generate_secret() -> Result<String, CryptoError> {
    let mut bytes = Zeroizing::new([0u8; TOTP_SECRET_BYTES]);
    super::fill_random("TOTP secret", bytes.as_mut())?;
    Ok(data_encoding::BASE32_NOPAD.encode(bytes.as_ref()))
}

/// The TOTP code of `secret_b32` at time `at` (6 digits).
pub fn totp_code(secret_b32: &str, at: SystemTime) -> Result<String, CryptoError> {
    let key = decode_totp_secret(secret_b32)?;
    let step = totp_step(at)?;
    Ok(hotp(&key, step, TOTP_DIGITS))
}

/// True when `code` is the TOTP code of `secret_b32` at `at`, or one step
/// before or after. Compares in constant time; false for a bad secret or a
/// code that is not 6 digits.
pub fn totp_verify(secret_b32: &str, code: &str, at: SystemTime) -> bool {
    if code.len() != TOTP_DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let (Ok(key), Ok(step)) = (decode_totp_secret(secret_b32), totp_step(at)) else {
        return false;
    };
    let mut matched = subtle::Choice::from(0);
    for candidate in [step.checked_sub(1), Some(step), step.checked_add(1)].into_iter().flatten() {
        matched |= hotp(&key, candidate, TOTP_DIGITS).as_bytes().ct_eq(code.as_bytes());
    }
    matched.into()
}

/// HOTP (RFC 4226) of `key` at `counter`, `digits` long (at most 9).
pub(crate) fn hotp(key: &[u8], counter: u64, digits: u32) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    // Dynamic truncation (RFC 4226, 5.3). A SHA-1 tag is 20 bytes, so the
    // offset (at most 15) plus 4 stays inside it.
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let mut word = [0u8; 4];
    if let Some(bytes) = mac.get(offset..offset + 4) {
        word.copy_from_slice(bytes);
    }
    let binary = u32::from_be_bytes(word) & 0x7fff_ffff;
    let digits = digits.min(9);
    let code = binary % 10u32.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

fn totp_step(at: SystemTime) -> Result<u64, CryptoError> {
    let secs = at.duration_since(UNIX_EPOCH).map_err(|_| CryptoError::input("TOTP time", "is before 1970"))?;
    Ok(secs.as_secs() / TOTP_STEP_SECS)
}

/// Decodes a base32 TOTP secret, tolerating lower case, spaces and padding.
fn decode_totp_secret(secret_b32: &str) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    const WHAT: &str = "TOTP secret";
    let cleaned: Zeroizing<String> = Zeroizing::new(
        secret_b32
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '=' && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    );
    if cleaned.is_empty() {
        return Err(CryptoError::input(WHAT, "is empty; expected base32 (A-Z, 2-7)"));
    }
    data_encoding::BASE32_NOPAD
        .decode(cleaned.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::input(WHAT, "is not valid base32; expected the letters A-Z and digits 2-7"))
}
