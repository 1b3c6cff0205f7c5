use couponrush_config::MessageSigningSettings;
use rdkafka::message::{Headers, OwnedHeaders};

use super::{MessageSigner, SIGNATURE_HEADER, SignatureRejection};

const CURRENT: &str = "0123456789abcdef0123456789abcdef-current";
const PREVIOUS: &str = "fedcba9876543210fedcba9876543210-previous";

fn rotated() -> MessageSigner {
    MessageSigner::new(&MessageSigningSettings::new(
        "k2",
        CURRENT,
        Some(("k1", PREVIOUS)),
    ))
}

fn sign(signer: &MessageSigner, key: Option<&[u8]>, payload: &[u8]) -> String {
    signer
        .signature("coupon-issue", key, payload)
        .unwrap_or_default()
}

#[test]
fn a_signed_message_verifies_and_names_its_key() {
    let signer = rotated();
    let signature = sign(&signer, Some(b"alice"), b"payload");
    assert!(signature.starts_with("k2:"), "{signature}");
    assert_eq!(signature.len(), "k2:".len() + 64);
    let verdict = signer.verify(
        Some(signature.as_bytes()),
        "coupon-issue",
        Some(b"alice"),
        b"payload",
    );
    assert_eq!(verdict, Ok(()));
}

#[test]
fn the_previous_key_still_verifies_during_a_rotation() {
    let old_api = MessageSigner::new(&MessageSigningSettings::new("k1", PREVIOUS, None));
    let signature = sign(&old_api, Some(b"alice"), b"payload");
    assert!(signature.starts_with("k1:"), "{signature}");
    let verdict = rotated().verify(
        Some(signature.as_bytes()),
        "coupon-issue",
        Some(b"alice"),
        b"payload",
    );
    assert_eq!(verdict, Ok(()));
    // Once the previous key is dropped, its messages are refused by id.
    let dropped = MessageSigner::new(&MessageSigningSettings::new("k2", CURRENT, None));
    let verdict = dropped.verify(
        Some(signature.as_bytes()),
        "coupon-issue",
        Some(b"alice"),
        b"payload",
    );
    assert_eq!(verdict, Err(SignatureRejection::UnknownKeyId("k1".into())));
}

#[test]
fn any_change_to_topic_key_or_payload_breaks_the_signature() {
    let signer = rotated();
    let signature = sign(&signer, Some(b"alice"), b"payload");
    let header = Some(signature.as_bytes());
    let mismatch = Err(SignatureRejection::BadSignature("MAC mismatch"));
    for (topic, key, payload) in [
        ("coupon-issue", Some(&b"alice"[..]), &b"payloaD"[..]),
        ("coupon-issue", Some(&b"alice"[..]), &b"payload "[..]),
        ("coupon-issue", Some(&b"mallory"[..]), &b"payload"[..]),
        ("coupon-issue", None, &b"payload"[..]),
        ("coupon-issue-staging", Some(&b"alice"[..]), &b"payload"[..]),
    ] {
        assert_eq!(
            signer.verify(header, topic, key, payload),
            mismatch,
            "{topic} {key:?} {payload:?}"
        );
    }
    // Length prefixes: moving bytes between key and payload is a different message.
    let split = sign(&signer, Some(b"ab"), b"c");
    assert_eq!(
        signer.verify(Some(split.as_bytes()), "coupon-issue", Some(b"a"), b"bc"),
        mismatch
    );
    // Absent and empty keys differ.
    let keyless = sign(&signer, None, b"payload");
    assert_eq!(
        signer.verify(
            Some(keyless.as_bytes()),
            "coupon-issue",
            Some(b""),
            b"payload"
        ),
        mismatch
    );
}

#[test]
fn malformed_or_missing_headers_are_refused_with_their_reason() {
    let signer = rotated();
    let verify = |header: Option<&[u8]>| signer.verify(header, "coupon-issue", None, b"p");
    assert_eq!(verify(None).map_err(|r| r.reason()), Err("UNSIGNED"));
    let good = sign(&signer, None, b"p");
    let (_, mac) = good.split_once(':').unwrap_or_default();
    let wrong_mac = format!("k2:{}", "00".repeat(32));
    let short_mac = format!("k2:{}", &mac[..62]);
    let plus_hex = format!("k2:+{}", &mac[1..]);
    for (header, reason) in [
        (&b"no-colon"[..], "BAD_SIGNATURE"),
        (&b"k2:zz"[..], "BAD_SIGNATURE"),
        (&b"\xff\xfe:00"[..], "BAD_SIGNATURE"),
        (wrong_mac.as_bytes(), "BAD_SIGNATURE"),
        (short_mac.as_bytes(), "BAD_SIGNATURE"),
        (plus_hex.as_bytes(), "BAD_SIGNATURE"),
        (format!("k9:{mac}").as_bytes(), "UNKNOWN_KEY_ID"),
        (format!(":{mac}").as_bytes(), "UNKNOWN_KEY_ID"),
    ] {
        assert_eq!(
            verify(Some(header)).map_err(|r| r.reason()),
            Err(reason),
            "{}",
            String::from_utf8_lossy(header)
        );
    }
    assert_eq!(verify(Some(good.as_bytes())), Ok(()));
}

#[test]
fn a_different_key_under_the_same_id_does_not_verify() {
    let forger = MessageSigner::new(&MessageSigningSettings::new(
        "k2",
        "attacker-chosen-key-of-32-bytes-or-more",
        None,
    ));
    let forged = sign(&forger, Some(b"alice"), b"payload");
    assert_eq!(
        rotated()
            .verify(
                Some(forged.as_bytes()),
                "coupon-issue",
                Some(b"alice"),
                b"payload"
            )
            .map_err(|r| r.reason()),
        Err("BAD_SIGNATURE")
    );
}

#[test]
fn signing_off_adds_no_header_and_accepts_anything() {
    let off = MessageSigner::new(&MessageSigningSettings::new("k1", "", None));
    assert!(!off.enabled());
    let headers = off.sign(OwnedHeaders::new(), "coupon-issue", None, b"p");
    assert_eq!(headers.count(), 0);
    assert_eq!(off.verify(None, "coupon-issue", None, b"p"), Ok(()));
}

#[test]
fn the_header_is_found_among_others_and_the_key_never_printed() {
    let signer = rotated();
    let headers = signer.sign(
        crate::schema_headers(),
        "coupon-issue",
        Some(b"alice"),
        b"payload",
    );
    assert_eq!(headers.count(), 2);
    assert!(headers.iter().any(|h| h.key == SIGNATURE_HEADER));
    let verdict = signer.verify_message(Some(&headers), "coupon-issue", Some(b"alice"), b"payload");
    assert_eq!(verdict, Ok(()));
    let shown = format!("{signer:?}");
    assert!(shown.contains("k2") && shown.contains("k1"), "{shown}");
    assert!(
        !shown.contains(CURRENT) && !shown.contains(PREVIOUS),
        "{shown}"
    );
}
