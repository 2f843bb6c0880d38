//! DPoP (RFC 9449): a client proves, request by request, that it holds a private key; tokens
//! issued with a proof are bound to that key's thumbprint (`cnf.jkt`) and are worthless
//! without a fresh proof made with it.
//!
//! A proof is checked in full before anything is spent: signature with the key it carries,
//! `typ`, `alg`, `htm`, `htu`, `iat` within a short window, `ath` (the access token's hash) on
//! resource requests, the server nonce when one is required, and last its `jti`, recorded in
//! the database so a replay is refused on every node.

use aws_lc_rs::signature::{
    self, RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::domain::secret::sha256_hex;
use crate::http::error::json_error;
use crate::store::now;

/// The proof's signing algorithms latchkey accepts (asymmetric only, RFC 9449 §4.2). Ed25519
/// goes by both of its names: `EdDSA` (RFC 8037) and the fully specified `Ed25519` (RFC 9864).
pub const ALGS: [&str; 6] = ["ES256", "ES384", "EdDSA", "Ed25519", "RS256", "PS256"];
/// The `WWW-Authenticate` challenge for the DPoP scheme, naming [`ALGS`].
const CHALLENGE: &str = "DPoP algs=\"ES256 ES384 EdDSA Ed25519 RS256 PS256\"";
/// Seconds a proof is accepted after its `iat`.
pub const MAX_AGE: i64 = 60;
/// Seconds a proof's `iat` may be ahead of this server's clock.
const CLOCK_SKEW: i64 = 10;
/// Proofs longer than this are refused unread (an RSA-8192 key fits well within it).
const MAX_PROOF_LEN: usize = 8192;
/// A nonce is good for the window it was made in and the one after.
const NONCE_WINDOW: i64 = 120;

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `invalid_dpop_proof`, with what was wrong.
    Invalid(&'static str),
    /// `use_dpop_nonce`: retry with the nonce in the `DPoP-Nonce` header.
    UseNonce(String),
}

impl Refusal {
    pub fn error(&self) -> &'static str {
        match self {
            Refusal::Invalid(_) => "invalid_dpop_proof",
            Refusal::UseNonce(_) => "use_dpop_nonce",
        }
    }

    pub fn description(&self) -> &'static str {
        match self {
            Refusal::Invalid(why) => why,
            Refusal::UseNonce(_) => "send a DPoP proof carrying the nonce in the DPoP-Nonce header",
        }
    }

    /// The nonce to send back in `DPoP-Nonce`, for `use_dpop_nonce`.
    pub fn nonce(&self) -> Option<HeaderValue> {
        match self {
            Refusal::UseNonce(nonce) => HeaderValue::from_str(nonce).ok(),
            Refusal::Invalid(_) => None,
        }
    }
}

/// Add the DPoP challenge to a 401's headers, after the `Bearer` one: the token may also be
/// sent in the DPoP scheme (RFC 9449 §7.1).
pub fn offer(headers: &mut HeaderMap) {
    headers.append(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(CHALLENGE),
    );
}

/// The answer of a resource request whose DPoP proof was refused (RFC 9449 §7.1, §9): 401 with
/// a `DPoP` challenge naming the error, and the nonce to use when that was the trouble.
pub fn refusal_response(refusal: &Refusal) -> Response {
    let mut response = json_error(
        StatusCode::UNAUTHORIZED,
        refusal.error(),
        refusal.description(),
    );
    let challenge = format!(
        "DPoP error=\"{}\", error_description=\"{}\", algs=\"{}\"",
        refusal.error(),
        refusal.description(),
        ALGS.join(" ")
    );
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    if let Some(nonce) = refusal.nonce() {
        response.headers_mut().insert("dpop-nonce", nonce);
    }
    response
}

/// A proof that passed every check.
#[derive(Debug, Clone)]
pub struct Proof {
    /// The SHA-256 JWK thumbprint (RFC 7638) of the proof's key: what tokens are bound to.
    pub jkt: String,
}

/// What the request a proof must match was.
pub struct Target<'a> {
    pub method: &'a str,
    /// The request path; the proof's `htu` must be the issuer's origin with this path.
    pub path: &'a str,
    /// The access token presented with the proof (resource requests), whose hash `ath` must be.
    pub access_token: Option<&'a str>,
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The request's `DPoP` header: `None` without one; refused when there are several.
pub fn header(headers: &HeaderMap) -> Result<Option<&str>, Refusal> {
    let mut values = headers.get_all("dpop").iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Refusal::Invalid("send one DPoP header, not several"));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| Refusal::Invalid("the DPoP proof is not a JWT"))
}

/// Check the request's DPoP proof, if it has one, against `target`.
pub async fn check(
    state: &AppState,
    headers: &HeaderMap,
    target: &Target<'_>,
) -> Result<Option<Proof>, Refusal> {
    let Some(jwt) = header(headers)? else {
        return Ok(None);
    };
    verify(state, jwt, target, now()).await.map(Some)
}

/// Check the DPoP proof of a POST to an OAuth endpoint (token, PAR), if it has one.
pub async fn check_endpoint_request(
    state: &AppState,
    params: &super::params::Params,
) -> Result<Option<Proof>, Refusal> {
    let target = Target {
        method: "POST",
        path: &params.path,
        access_token: None,
    };
    check(state, &params.headers, &target).await
}

async fn verify(
    state: &AppState,
    jwt: &str,
    target: &Target<'_>,
    now: i64,
) -> Result<Proof, Refusal> {
    let (jkt, claims) = signed_claims(jwt)?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let jti = text("jti")
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(Refusal::Invalid("the proof needs a jti"))?;
    if text("htm") != Some(target.method) {
        return Err(Refusal::Invalid(
            "the proof's htm is not this request's method",
        ));
    }
    if !same_target(text("htu"), &state.config.issuer, target.path) {
        return Err(Refusal::Invalid(
            "the proof's htu is not this request's URL",
        ));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_f64)
        .ok_or(Refusal::Invalid("the proof needs an iat"))?;
    let iat = iat.floor() as i64;
    if iat > now + CLOCK_SKEW || iat < now - MAX_AGE {
        return Err(Refusal::Invalid(
            "the proof's iat is too far from this server's clock",
        ));
    }
    if let Some(token) = target.access_token {
        let ath = B64.encode(Sha256::digest(token.as_bytes()));
        if text("ath") != Some(ath.as_str()) {
            return Err(Refusal::Invalid(
                "the proof's ath is not the access token's hash",
            ));
        }
    }
    let nonce = text("nonce");
    if nonce.is_some() || state.config.dpop_nonce {
        let key = nonce_key(state).await?;
        if !nonce.is_some_and(|n| nonce_valid(&key, n, now)) {
            return Err(Refusal::UseNonce(make_nonce(&key, now)));
        }
    }
    // Last, so that only proofs that are good in every other way are remembered.
    let seen = sha256_hex(format!("{jkt}\0{jti}").as_bytes());
    let fresh = state
        .store
        .remember_dpop_proof(&seen, iat + MAX_AGE + 1)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "database error while recording a DPoP proof");
            Refusal::Invalid("the proof could not be checked; retry")
        })?;
    if !fresh {
        return Err(Refusal::Invalid("this proof was already used"));
    }
    Ok(Proof { jkt })
}

/// The proof's key thumbprint and claims, once its header and signature check out (nothing
/// here needs the database; the fuzz target `dpop_proof` drives it).
pub fn signed_claims(jwt: &str) -> Result<(String, Map<String, Value>), Refusal> {
    const NOT_JWT: Refusal = Refusal::Invalid("the DPoP proof is not a JWT");
    if jwt.len() > MAX_PROOF_LEN {
        return Err(Refusal::Invalid("the DPoP proof is too long"));
    }
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(NOT_JWT);
    };
    let json = |part: &str| {
        B64.decode(part)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
            .ok_or(NOT_JWT)
    };
    let header = json(h)?;
    let claims = json(c)?;
    let signature = B64.decode(s).map_err(|_| NOT_JWT)?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(Refusal::Invalid("the proof's typ must be dpop+jwt"));
    }
    if header.contains_key("crit") {
        return Err(Refusal::Invalid(
            "the proof has critical headers latchkey does not know",
        ));
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .filter(|a| ALGS.contains(a))
        .ok_or(Refusal::Invalid(
            "the proof's alg must be one of ES256, ES384, EdDSA, Ed25519, RS256, PS256",
        ))?;
    let jwk = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or(Refusal::Invalid(
            "the proof must carry its public key as jwk",
        ))?;
    let key = PublicKey::from_jwk(jwk, alg)?;
    let signed = &jwt[..h.len() + 1 + c.len()];
    if !key.verify(signed.as_bytes(), &signature) {
        return Err(Refusal::Invalid("the proof's signature does not verify"));
    }
    Ok((key.thumbprint, claims))
}

/// A proof's public key, checked against its `alg`.
struct PublicKey {
    thumbprint: String,
    kind: KeyKind,
}

enum KeyKind {
    /// EC or OKP: the raw public key and its algorithm.
    Raw(&'static dyn VerificationAlgorithm, Vec<u8>),
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
        params: &'static signature::RsaParameters,
    },
}

impl PublicKey {
    fn from_jwk(jwk: &Map<String, Value>, alg: &str) -> Result<PublicKey, Refusal> {
        const BAD_KEY: Refusal =
            Refusal::Invalid("the proof's jwk is not a public key for its alg");
        // A private key in a header would be published to everyone on the path.
        if ["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .any(|m| jwk.contains_key(*m))
        {
            return Err(Refusal::Invalid(
                "the proof's jwk must not contain a private key",
            ));
        }
        let member = |name: &str| jwk.get(name).and_then(Value::as_str).ok_or(BAD_KEY);
        let bytes = |name: &str| member(name).and_then(|v| B64.decode(v).map_err(|_| BAD_KEY));
        // RFC 7638 §3.2: the required members, in lexicographic order, no whitespace (the
        // values decoded as base64url above, so they need no escaping).
        let thumbprint = |canonical: String| B64.encode(Sha256::digest(canonical.as_bytes()));
        let kty = member("kty")?;
        let key = match (alg, kty) {
            ("ES256" | "ES384", "EC") => {
                let (crv, len, verifier): (_, _, &'static dyn VerificationAlgorithm) =
                    if alg == "ES256" {
                        ("P-256", 32, &signature::ECDSA_P256_SHA256_FIXED)
                    } else {
                        ("P-384", 48, &signature::ECDSA_P384_SHA384_FIXED)
                    };
                let (x, y) = (bytes("x")?, bytes("y")?);
                if member("crv")? != crv || x.len() != len || y.len() != len {
                    return Err(BAD_KEY);
                }
                let mut point = vec![4u8];
                point.extend(x);
                point.extend(y);
                PublicKey {
                    thumbprint: thumbprint(format!(
                        r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
                        member("x")?,
                        member("y")?
                    )),
                    kind: KeyKind::Raw(verifier, point),
                }
            }
            ("EdDSA" | "Ed25519", "OKP") => {
                let x = bytes("x")?;
                if member("crv")? != "Ed25519" || x.len() != 32 {
                    return Err(BAD_KEY);
                }
                PublicKey {
                    thumbprint: thumbprint(format!(
                        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                        member("x")?
                    )),
                    kind: KeyKind::Raw(&signature::ED25519, x),
                }
            }
            ("RS256" | "PS256", "RSA") => {
                let (n, e) = (bytes("n")?, bytes("e")?);
                let n_bits = n.iter().skip_while(|b| **b == 0).count() * 8;
                if !(2048..=8192).contains(&n_bits) || e.is_empty() || e.len() > 8 {
                    return Err(BAD_KEY);
                }
                PublicKey {
                    thumbprint: thumbprint(format!(
                        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                        member("e")?,
                        member("n")?
                    )),
                    kind: KeyKind::Rsa {
                        n,
                        e,
                        params: if alg == "RS256" {
                            &signature::RSA_PKCS1_2048_8192_SHA256
                        } else {
                            &signature::RSA_PSS_2048_8192_SHA256
                        },
                    },
                }
            }
            _ => return Err(BAD_KEY),
        };
        Ok(key)
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.kind {
            KeyKind::Raw(algorithm, key) => UnparsedPublicKey::new(*algorithm, key)
                .verify(message, signature)
                .is_ok(),
            KeyKind::Rsa { n, e, params } => RsaPublicKeyComponents { n, e }
                .verify(params, message, signature)
                .is_ok(),
        }
    }
}

/// Whether `htu` names this server's URL for `path`, ignoring query and fragment, compared
/// after URL normalisation (case of scheme and host, default ports), RFC 9449 §4.3.
fn same_target(htu: Option<&str>, issuer: &str, path: &str) -> bool {
    let (Some(htu), Ok(expected)) = (htu, url::Url::parse(&format!("{issuer}{path}"))) else {
        return false;
    };
    url::Url::parse(htu).is_ok_and(|given| {
        given.scheme() == expected.scheme()
            && given.host() == expected.host()
            && given.port_or_known_default() == expected.port_or_known_default()
            && given.path() == expected.path()
    })
}

/// The key that makes nonces, shared by every node through the database.
async fn nonce_key(state: &AppState) -> Result<[u8; 32], Refusal> {
    state.store.server_key("dpop_nonce").await.map_err(|e| {
        tracing::error!(error = %e, "database error while reading the DPoP nonce key");
        Refusal::Invalid("the proof could not be checked; retry")
    })
}

/// The nonce for the window `window`: the window number and a MAC of it.
fn nonce_for(key: &[u8; 32], window: i64) -> String {
    let mac = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
        &window.to_be_bytes(),
    );
    let mut bytes = window.to_be_bytes().to_vec();
    bytes.extend_from_slice(&mac.as_ref()[..16]);
    B64.encode(bytes)
}

fn make_nonce(key: &[u8; 32], now: i64) -> String {
    nonce_for(key, now.div_euclid(NONCE_WINDOW))
}

fn nonce_valid(key: &[u8; 32], nonce: &str, now: i64) -> bool {
    let current = now.div_euclid(NONCE_WINDOW);
    [current, current - 1].iter().any(|w| {
        subtle::ConstantTimeEq::ct_eq(nonce.as_bytes(), nonce_for(key, *w).as_bytes()).into()
    })
}

/// A nonce to hand out now (in `DPoP-Nonce` on token responses when nonces are required).
pub async fn fresh_nonce(state: &AppState) -> Option<HeaderValue> {
    let key = nonce_key(state).await.ok()?;
    HeaderValue::from_str(&make_nonce(&key, now())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn htu_comparison_normalises_and_ignores_query() {
        let issuer = "http://127.0.0.1:8080";
        assert!(same_target(
            Some("http://127.0.0.1:8080/oauth/token"),
            issuer,
            "/oauth/token"
        ));
        assert!(same_target(
            Some("HTTP://127.0.0.1:8080/oauth/token?x=1#f"),
            issuer,
            "/oauth/token"
        ));
        assert!(same_target(
            Some("https://id.example.com:443/t"),
            "https://id.example.com",
            "/t"
        ));
        assert!(!same_target(
            Some("http://127.0.0.1:8081/oauth/token"),
            issuer,
            "/oauth/token"
        ));
        assert!(!same_target(
            Some("http://127.0.0.1:8080/oauth/par"),
            issuer,
            "/oauth/token"
        ));
        assert!(!same_target(Some("/oauth/token"), issuer, "/oauth/token"));
        assert!(!same_target(None, issuer, "/oauth/token"));
    }

    #[test]
    fn nonces_live_two_windows() {
        let key = [7u8; 32];
        let nonce = make_nonce(&key, 1_000_000);
        assert!(nonce_valid(&key, &nonce, 1_000_000));
        assert!(nonce_valid(&key, &nonce, 1_000_000 + NONCE_WINDOW));
        assert!(!nonce_valid(&key, &nonce, 1_000_000 + 2 * NONCE_WINDOW));
        assert!(!nonce_valid(&[8u8; 32], &nonce, 1_000_000));
        assert!(!nonce_valid(&key, "AAAA", 1_000_000));
    }

    #[test]
    fn the_challenge_names_every_alg() {
        assert_eq!(CHALLENGE, format!("DPoP algs=\"{}\"", ALGS.join(" ")));
    }

    #[test]
    fn rfc_7638_thumbprint() {
        // The example of RFC 7638 §3.1.
        let jwk = json!({"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
        let key = PublicKey::from_jwk(jwk.as_object().unwrap(), "RS256").unwrap();
        assert_eq!(
            key.thumbprint,
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
