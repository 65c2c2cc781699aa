//! Tests for the certificate keys: `tls_certfile`/`tls_keyfile` and the `tls_certificates` list.

use std::path::PathBuf;

use super::support::*;
use crate::config::CertPair;

fn pair(cert: &str, key: &str) -> CertPair {
    CertPair {
        certfile: PathBuf::from(cert),
        keyfile: PathBuf::from(key),
    }
}

#[test]
fn certificates_are_read_in_order_beside_the_default_pair() {
    let env = |name: &str| (name == "DIR").then(|| "/etc/certs".to_string());
    let c = ok_env(
        &with_global(
            "  tls_certfile: /d.pem
  tls_keyfile: /d.key
  tls_certificates:
    - certfile: /a.pem
      keyfile: /a.key
    - {certfile: \"${DIR}/b.pem\", keyfile: /b.key}
    - certfile: /both.pem
      keyfile: /both.pem
",
        ),
        &env,
    );
    let g = &c.global;
    assert_eq!(g.tls_certfile, Some(PathBuf::from("/d.pem")));
    assert_eq!(
        g.tls_certificates,
        [
            pair("/a.pem", "/a.key"),
            pair("/etc/certs/b.pem", "/b.key"),
            pair("/both.pem", "/both.pem"),
        ]
    );
}

#[test]
fn certificates_without_a_default_pair_and_none_at_all() {
    let c = ok(&with_global(
        "  tls_certificates:\n    - certfile: /a.pem\n      keyfile: /a.key\n",
    ));
    assert_eq!(c.global.tls_certfile, None);
    assert_eq!(c.global.tls_certificates, [pair("/a.pem", "/a.key")]);
    assert!(ok(&with_global("")).global.tls_certificates.is_empty());
    assert!(
        ok(&with_global("  tls_certificates: []\n"))
            .global
            .tls_certificates
            .is_empty()
    );
    assert!(
        ok(&with_global("  tls_certificates:\n"))
            .global
            .tls_certificates
            .is_empty()
    );
}

#[test]
fn each_certificate_error_names_field_line_and_problem() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, usize, &str)] = &[
        ("  tls_certificates: /a.pem\n", "global.tls_certificates", 3,
         "expected a list of certificates, each with certfile and keyfile, found a string \"/a.pem\""),
        ("  tls_certificates:\n    - /a.pem\n", "global.tls_certificates[0]", 4,
         "expected a mapping with certfile and keyfile, found a string"),
        ("  tls_certificates:\n    - certfile: /a.pem\n", "global.tls_certificates[0].keyfile", 4,
         "missing: each certificate needs both certfile and keyfile"),
        ("  tls_certificates:\n    - certfile: /a.pem\n      keyfile: /a.key\n    - keyfile: /b.key\n",
         "global.tls_certificates[1].certfile", 6, "needs both certfile and keyfile"),
        ("  tls_certificates:\n    - certfile: /a.pem\n      keyfile: /a.key\n      chain: /c.pem\n",
         "global.tls_certificates[0].chain", 6, "unknown key \"chain\"; allowed here: certfile, keyfile"),
        ("  tls_certificates:\n    - certfile: /a.pem\n      keyfile: /a.key\n      key_file: /a.key\n",
         "global.tls_certificates[0].key_file", 6, "(did you mean \"keyfile\"?)"),
        ("  tls_certificates:\n    - certfile: \"\"\n      keyfile: /a.key\n",
         "global.tls_certificates[0].certfile", 4, "must not be empty"),
        ("  tls_certificates:\n    - certfile: 5\n      keyfile: /a.key\n",
         "global.tls_certificates[0].certfile", 4, "expected a string, found an integer 5"),
        ("  tls_certificates:\n    - certfile: /a.pem\n      keyfile: /a.key\n    - certfile: /a.pem\n      keyfile: /b.key\n",
         "global.tls_certificates[1].certfile", 6,
         "/a.pem is already used by global.tls_certificates[0].certfile: each file belongs to one certificate"),
        ("  tls_certificates:\n    - certfile: /a.pem\n      keyfile: /a.key\n    - certfile: /b.pem\n      keyfile: /a.key\n",
         "global.tls_certificates[1].keyfile", 7, "/a.key is already used by global.tls_certificates[0].keyfile"),
        ("  tls_certfile: /d.pem\n  tls_keyfile: /d.key\n  tls_certificates:\n    - certfile: /d.pem\n      keyfile: /x.key\n",
         "global.tls_certificates[0].certfile", 6, "/d.pem is already used by global.tls_certfile"),
        ("  tls_certificates:\n    - certfile: /a.pem\n      keyfile: /b.pem\n    - certfile: /b.pem\n      keyfile: /c.key\n",
         "global.tls_certificates[1].certfile", 6, "/b.pem is already used by global.tls_certificates[0].keyfile"),
    ];
    for (extra, field, line, fragment) in cases {
        expect_one(&with_global(extra), field, Some(*line), fragment);
    }
}

#[test]
fn a_pair_listed_twice_is_flagged_on_both_files() {
    let text = with_global(
        "  tls_certificates:\n    - certfile: /a.pem\n      keyfile: /a.key\n    - certfile: /a.pem\n      keyfile: /a.key\n",
    );
    let found = issues(&text);
    assert_eq!(found.len(), 2, "{found:#?}");
    expect_issue(
        &found[0],
        "global.tls_certificates[1].certfile",
        Some(6),
        "already used",
        &text,
    );
    expect_issue(
        &found[1],
        "global.tls_certificates[1].keyfile",
        Some(7),
        "already used",
        &text,
    );
}
