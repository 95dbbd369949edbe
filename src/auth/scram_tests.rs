//! Tests of the SCRAM server and client together: RFC 7677 vectors, round trips with and
//! without channel binding, negotiation rules, and hostile or truncated input.

use super::scram_common::b64;
use super::*;

const USER: &str = "user";
const PASSWORD: &str = "pencil";
const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const SALT_B64: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
// RFC 7677 §3.
const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
const CB_DATA: &[u8] = b"\x01\x02certificate-hash\xff";

fn rfc_verifier() -> ScramVerifier {
    let salt = scram_common::unb64(SALT_B64).unwrap();
    ScramVerifier::generate_with(PASSWORD, &salt, 4096)
}

fn rfc_server() -> ScramServer {
    ScramServer::new(USER, Some(&rfc_verifier()), None).with_server_nonce(SERVER_NONCE)
}

/// Server mid-exchange (client-first accepted), for tampering with client-final.
fn server_after_first(cb: Option<Vec<u8>>, mechanism: &str, first: &str) -> ScramServer {
    let mut s = ScramServer::new(USER, Some(&rfc_verifier()), cb).with_server_nonce(SERVER_NONCE);
    s.client_first(mechanism, first.as_bytes()).unwrap();
    s
}

#[test]
fn rfc7677_client() {
    let mut c = ScramClient::with_user_and_nonce(PASSWORD, USER, CLIENT_NONCE);
    assert_eq!(c.client_first(), CLIENT_FIRST.as_bytes());
    assert_eq!(
        c.server_first(SERVER_FIRST.as_bytes()).unwrap(),
        CLIENT_FINAL.as_bytes()
    );
    c.server_final(SERVER_FINAL.as_bytes()).unwrap();
}

#[test]
fn rfc7677_server() {
    let mut s = rfc_server();
    let first = s
        .client_first(SCRAM_SHA_256, CLIENT_FIRST.as_bytes())
        .unwrap();
    assert_eq!(first, SERVER_FIRST.as_bytes());
    assert_eq!(
        s.client_final(CLIENT_FINAL.as_bytes()).unwrap(),
        SERVER_FINAL.as_bytes()
    );
}

/// Runs a full exchange; the server's result.
fn round_trip(
    password: &str,
    verifier: Option<&ScramVerifier>,
    cb: Option<Vec<u8>>,
) -> Result<(), AuthError> {
    let mut server = ScramServer::new("alice", verifier, cb);
    let mut client = ScramClient::new(password);
    let first = server.client_first(SCRAM_SHA_256, &client.client_first())?;
    let fin = client.server_first(&first).unwrap();
    let server_final = server.client_final(&fin)?;
    client.server_final(&server_final).unwrap();
    Ok(())
}

#[test]
fn client_server_round_trip() {
    let v = ScramVerifier::generate("s3cret");
    assert_eq!(round_trip("s3cret", Some(&v), None), Ok(()));
    assert_eq!(
        round_trip("s3cret", Some(&v), Some(CB_DATA.to_vec())),
        Ok(())
    );
    assert_eq!(round_trip("wrong", Some(&v), None), Err(AuthError::Failed));
    // Unknown user: same error as a wrong password, even with the "right" password.
    assert_eq!(round_trip("s3cret", None, None), Err(AuthError::Failed));
}

/// SCRAM-SHA-256-PLUS: our client doesn't bind, so build client-final by hand from its proof.
fn plus_exchange(server_cb: &[u8], client_cb: &[u8]) -> Result<Vec<u8>, AuthError> {
    let v = ScramVerifier::generate("pw");
    let mut s = ScramServer::new("u", Some(&v), Some(server_cb.to_vec()));
    let header = "p=tls-server-end-point,,";
    let first = s.client_first(SCRAM_SHA_256_PLUS, format!("{header}n=,r=abc").as_bytes())?;
    let first = std::str::from_utf8(&first).unwrap();
    let nonce = first.split(',').next().unwrap().strip_prefix("r=").unwrap();
    let cbind = b64(&[header.as_bytes(), client_cb].concat());
    let without_proof = format!("c={cbind},r={nonce}");
    let auth_message = format!("n=,r=abc,{first},{without_proof}");
    let client_key = {
        let salted = scram_common::salted_password(
            b"pw",
            &v.salt,
            std::num::NonZeroU32::new(v.iterations).unwrap(),
        );
        scram_common::client_key(&salted)
    };
    let sig = scram_common::hmac_sha256(&v.stored_key, &[auth_message.as_bytes()]);
    let proof = scram_common::xor(&client_key, &sig);
    s.client_final(format!("{without_proof},p={}", b64(&proof)).as_bytes())
}

#[test]
fn plus_with_binding() {
    assert!(plus_exchange(CB_DATA, CB_DATA).unwrap().starts_with(b"v="));
    assert!(matches!(
        plus_exchange(CB_DATA, b"other cert"),
        Err(AuthError::ChannelBinding(_))
    ));
}

#[test]
fn mechanisms_list() {
    assert_eq!(mechanisms(true), [SCRAM_SHA_256_PLUS, SCRAM_SHA_256]);
    assert_eq!(mechanisms(false), [SCRAM_SHA_256]);
    assert_eq!(
        ScramClient::choose_mechanism(mechanisms(true).iter().copied()),
        Ok(SCRAM_SHA_256)
    );
    assert!(matches!(
        ScramClient::choose_mechanism([SCRAM_SHA_256_PLUS]),
        Err(AuthError::Unsupported(_))
    ));
    assert_eq!(
        ScramClient::choose_mechanism(["SCRAM-SHA-1"]),
        Err(AuthError::NoMechanism)
    );
}

#[test]
fn gs2_negotiation_rules() {
    let cb = || Some(CB_DATA.to_vec());
    let try_first = |cb: Option<Vec<u8>>, mech: &str, msg: &str| {
        ScramServer::new(USER, Some(&rfc_verifier()), cb).client_first(mech, msg.as_bytes())
    };
    let cb_err = |r: Result<Vec<u8>, AuthError>| matches!(r, Err(AuthError::ChannelBinding(_)));
    // Fine: no binding either side; client can't bind; client thinks server can't, and it can't.
    assert!(try_first(None, SCRAM_SHA_256, "n,,n=,r=x").is_ok());
    assert!(try_first(cb(), SCRAM_SHA_256, "n,,n=,r=x").is_ok());
    assert!(try_first(None, SCRAM_SHA_256, "y,,n=,r=x").is_ok());
    assert!(try_first(cb(), SCRAM_SHA_256_PLUS, "p=tls-server-end-point,,n=,r=x").is_ok());
    // Downgrade: we offered PLUS, client says it believes we didn't.
    assert!(cb_err(try_first(cb(), SCRAM_SHA_256, "y,,n=,r=x")));
    // Binding requested with the wrong mechanism, type or without binding data.
    assert!(cb_err(try_first(
        cb(),
        SCRAM_SHA_256,
        "p=tls-server-end-point,,n=,r=x"
    )));
    assert!(cb_err(try_first(
        None,
        SCRAM_SHA_256,
        "p=tls-server-end-point,,n=,r=x"
    )));
    assert!(cb_err(try_first(
        cb(),
        SCRAM_SHA_256_PLUS,
        "p=tls-unique,,n=,r=x"
    )));
    assert!(cb_err(try_first(cb(), SCRAM_SHA_256_PLUS, "n,,n=,r=x")));
    assert!(cb_err(try_first(cb(), SCRAM_SHA_256_PLUS, "y,,n=,r=x")));
    assert_eq!(
        try_first(None, SCRAM_SHA_256_PLUS, "p=tls-server-end-point,,n=,r=x"),
        Err(AuthError::InvalidMechanism)
    );
    assert_eq!(
        try_first(None, "PLAIN", "n,,n=,r=x"),
        Err(AuthError::InvalidMechanism)
    );
    assert!(matches!(
        try_first(None, SCRAM_SHA_256, "n,a=bob,n=,r=x"),
        Err(AuthError::Unsupported(_))
    ));
    assert!(matches!(
        try_first(None, SCRAM_SHA_256, "n,,m=ext,n=,r=x"),
        Err(AuthError::Unsupported(_))
    ));
    // The user name in client-first is ignored, extensions after the nonce are tolerated.
    assert!(try_first(None, SCRAM_SHA_256, "n,,n=mallory,r=x,q=ext").is_ok());
}

#[test]
fn channel_binding_attribute_must_repeat_gs2_header() {
    // "eSws" is base64("y,,"): the client changed its story between messages.
    let mut s = server_after_first(None, SCRAM_SHA_256, CLIENT_FIRST);
    let tampered = CLIENT_FINAL.replace("c=biws", "c=eSws");
    assert!(matches!(
        s.client_final(tampered.as_bytes()),
        Err(AuthError::ChannelBinding(_))
    ));
}

#[test]
fn tampered_client_final() {
    let cases: &[(&str, AuthError)] = &[
        (
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            AuthError::NonceMismatch,
        ),
        (
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            AuthError::Failed,
        ),
    ];
    let replaced = [
        CLIENT_FINAL.replace(
            cases[0].0,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k1",
        ),
        CLIENT_FINAL.replace(cases[1].0, "eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
    ];
    for ((_, want), msg) in cases.iter().zip(replaced) {
        let mut s = server_after_first(None, SCRAM_SHA_256, CLIENT_FIRST);
        assert_eq!(s.client_final(msg.as_bytes()), Err(want.clone()), "{msg}");
    }
    // A second proof smuggled in as an extension.
    let mut s = server_after_first(None, SCRAM_SHA_256, CLIENT_FIRST);
    let twice = format!("{CLIENT_FINAL},p=AAAA");
    assert!(matches!(
        s.client_final(twice.as_bytes()),
        Err(AuthError::Malformed(_))
    ));
    // A proof of the wrong length is malformed, not a failed login.
    let mut s = server_after_first(None, SCRAM_SHA_256, CLIENT_FIRST);
    let short = CLIENT_FINAL.replace("p=dHzb", "p=");
    assert!(matches!(
        s.client_final(short.as_bytes()),
        Err(AuthError::Malformed(_))
    ));
}

#[test]
fn tampered_server_messages() {
    let client = || {
        let mut c = ScramClient::with_user_and_nonce(PASSWORD, USER, CLIENT_NONCE);
        c.client_first();
        c
    };
    // Nonce that does not extend ours, or equals it (no server part).
    let other_nonce = SERVER_FIRST.replace("r=rOpr", "r=xOpr");
    assert_eq!(
        client().server_first(other_nonce.as_bytes()),
        Err(AuthError::NonceMismatch)
    );
    let bare = format!("r={CLIENT_NONCE},s={SALT_B64},i=4096");
    assert_eq!(
        client().server_first(bare.as_bytes()),
        Err(AuthError::NonceMismatch)
    );
    for bad in [
        SERVER_FIRST.replace("i=4096", "i=0"),
        SERVER_FIRST.replace("i=4096", "i=-1"),
        SERVER_FIRST.replace("s=W22Z", "s=!!"),
        SERVER_FIRST.replace(",i=4096", ""),
    ] {
        assert!(
            matches!(
                client().server_first(bad.as_bytes()),
                Err(AuthError::Malformed(_))
            ),
            "{bad}"
        );
    }
    // A server that does not know the password cannot produce the signature.
    let mut c = client();
    c.server_first(SERVER_FIRST.as_bytes()).unwrap();
    let forged = SERVER_FINAL.replace("v=6", "v=7");
    assert_eq!(
        c.server_final(forged.as_bytes()),
        Err(AuthError::ServerSignature)
    );
    let mut c = client();
    c.server_first(SERVER_FIRST.as_bytes()).unwrap();
    assert_eq!(
        c.server_final(b"e=invalid-proof"),
        Err(AuthError::ServerRejected("invalid-proof".into()))
    );
}

#[test]
fn steps_out_of_order() {
    let mut s = rfc_server();
    assert_eq!(
        s.client_final(CLIENT_FINAL.as_bytes()),
        Err(AuthError::OutOfOrder)
    );
    let mut s = rfc_server();
    s.client_first(SCRAM_SHA_256, CLIENT_FIRST.as_bytes())
        .unwrap();
    assert_eq!(
        s.client_first(SCRAM_SHA_256, CLIENT_FIRST.as_bytes()),
        Err(AuthError::OutOfOrder)
    );
    // An error ends the exchange: no second try at client-final.
    let mut s = server_after_first(None, SCRAM_SHA_256, CLIENT_FIRST);
    assert!(s.client_final(b"garbage").is_err());
    assert_eq!(
        s.client_final(CLIENT_FINAL.as_bytes()),
        Err(AuthError::OutOfOrder)
    );
    let mut c = ScramClient::new("x");
    assert_eq!(
        c.server_first(SERVER_FIRST.as_bytes()),
        Err(AuthError::OutOfOrder)
    );
    assert_eq!(
        c.server_final(SERVER_FINAL.as_bytes()),
        Err(AuthError::OutOfOrder)
    );
}

#[test]
fn unknown_user_is_stable_and_looks_real() {
    let first = |user: &str| {
        let mut s = ScramServer::new(user, None, None).with_server_nonce("N");
        String::from_utf8(s.client_first(SCRAM_SHA_256, b"n,,n=,r=c").unwrap()).unwrap()
    };
    assert_eq!(first("ghost"), first("ghost"));
    assert_ne!(first("ghost"), first("phantom"));
    let real = ScramVerifier::generate("x");
    let shape = |s: &str| s.split(',').map(str::len).collect::<Vec<_>>();
    let mut s = ScramServer::new("real", Some(&real), None).with_server_nonce("N");
    let real_first =
        String::from_utf8(s.client_first(SCRAM_SHA_256, b"n,,n=,r=c").unwrap()).unwrap();
    assert_eq!(shape(&first("ghost")), shape(&real_first));
}

/// Truncations and byte flips of every valid message must yield errors, never panics.
#[test]
fn hostile_input_never_panics() {
    let garbage: [&[u8]; 8] = [
        b"",
        b",",
        b",,",
        b"\xff\xfe",
        b"n,,\0",
        b"p=",
        b"n,,n=,r=",
        b"=,=,=",
    ];
    for msg in garbage {
        let mut s = rfc_server();
        assert!(s.client_first(SCRAM_SHA_256, msg).is_err());
        let mut s = server_after_first(None, SCRAM_SHA_256, CLIENT_FIRST);
        assert!(s.client_final(msg).is_err());
        let mut c = ScramClient::new("x");
        c.client_first();
        assert!(c.server_first(msg).is_err());
    }
    for end in 0..CLIENT_FIRST.len() {
        let _ = rfc_server().client_first(SCRAM_SHA_256, &CLIENT_FIRST.as_bytes()[..end]);
    }
    for end in 0..CLIENT_FINAL.len() {
        let mut s = server_after_first(None, SCRAM_SHA_256, CLIENT_FIRST);
        assert!(s.client_final(&CLIENT_FINAL.as_bytes()[..end]).is_err());
    }
    for (i, flip) in (0..CLIENT_FINAL.len()).zip([0x01u8, 0x80, 0x2c, 0x3d].iter().cycle()) {
        let mut msg = CLIENT_FINAL.as_bytes().to_vec();
        msg[i] ^= flip;
        let mut s = server_after_first(None, SCRAM_SHA_256, CLIENT_FIRST);
        assert!(s.client_final(&msg).is_err(), "flip at {i}");
    }
    for end in 0..SERVER_FIRST.len() {
        let mut c = ScramClient::with_user_and_nonce(PASSWORD, USER, CLIENT_NONCE);
        c.client_first();
        let _ = c.server_first(&SERVER_FIRST.as_bytes()[..end]);
    }
    for end in 0..SERVER_FINAL.len() {
        let mut c = ScramClient::with_user_and_nonce(PASSWORD, USER, CLIENT_NONCE);
        c.client_first();
        c.server_first(SERVER_FIRST.as_bytes()).unwrap();
        assert!(c.server_final(&SERVER_FINAL.as_bytes()[..end]).is_err());
    }
}
