//! TLS configuration checks; `certs` holds throwaway certificates for the unit tests.

pub(crate) mod certs;

use crate::tls::*;

fn global(extra: &str) -> crate::config::Global {
    let text = format!(
        "global:\n  bearer_token: 0123456789abcdef0123456789abcdef\n{extra}services:\n  - name: app\n    path: /\n    upstream: 127.0.0.1:9\n"
    );
    crate::config::parse(&text, "test.yaml", &|_| None)
        .unwrap()
        .global
}

#[test]
fn missing_files_without_certbot_are_worth_a_warning() {
    let d = std::env::temp_dir().join(format!("wakeproxy-tlswarn-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("cert.pem"), "x").unwrap();
    let files = format!(
        "  tls_certfile: {}\n  tls_keyfile: {}\n",
        d.join("cert.pem").display(),
        d.join("key.pem").display()
    );
    let w = config_warnings(&global(&files));
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("key.pem does not exist and auto_certbot is off"),
        "{w:?}"
    );
    let with_certbot = format!("{files}  auto_certbot: true\n  email: ops@example.com\n");
    assert!(config_warnings(&global(&with_certbot)).is_empty());
    assert!(config_warnings(&global("")).is_empty());
    let _ = std::fs::remove_dir_all(&d);
}
