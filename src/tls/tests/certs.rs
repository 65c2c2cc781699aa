//! Throwaway certificates for unit tests only (generated once with openssl, valid until 2126).
//! Integration tests make their own at run time.

/// A CA (EC P-256) that signed `EC_CERT`.
pub(crate) const CA_CERT: &str = "\
-----BEGIN CERTIFICATE-----
MIIBpjCCAUygAwIBAgIUKdj9pdqKCR9ojL/ChfJIpVQR/skwCgYIKoZIzj0EAwIw
ITEfMB0GA1UEAwwWd2FrZXByb3h5IHVuaXQtdGVzdCBDQTAgFw0yNjExMjYxNzI1
MjNaGA8yMTI2MTEwMjE3MjUyM1owITEfMB0GA1UEAwwWd2FrZXByb3h5IHVuaXQt
dGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABEDXsGiA0xBjg/tmmtpb
P69qBu/nNfzdt7d9JbUDXLEo36dzHdJ3e+shLEVtV8rYmdq8k6FCKmZqx9vDbU7+
5V6jYDBeMB0GA1UdDgQWBBSAMqCUZussjo3I9gjf0Y1Dke1yIDAfBgNVHSMEGDAW
gBSAMqCUZussjo3I9gjf0Y1Dke1yIDAPBgNVHRMBAf8EBTADAQH/MAsGA1UdDwQE
AwIBBjAKBggqhkjOPQQDAgNIADBFAiEA7/RwFFXRghvmbddfYItdA+SjW1iML33N
dKdQyZ9sRAcCIDjpRIG2jnbHRPsB6cAnhOOVVPUp8KpGQHifEId+6mx7
-----END CERTIFICATE-----
";
/// Leaf for `test.example` and 127.0.0.1, signed by `CA_CERT`.
pub(crate) const EC_CERT: &str = "\
-----BEGIN CERTIFICATE-----
MIIBjjCCATWgAwIBAgIGChssPU5fMAoGCCqGSM49BAMCMCExHzAdBgNVBAMMFndh
a2Vwcm94eSB1bml0LXRlc3QgQ0EwIBcNMjYxMTI2MTcyNTIzWhgPMjEyNjExMDIx
NzI1MjNaMBcxFTATBgNVBAMMDHRlc3QuZXhhbXBsZTBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABO+nJ712EEN5vJel8zcgmL4S+O0ixdz37kaSuzOBDX/2C1VgMBLJ
zDluRWh0I/6QoaHscWgzgFxLy8O+EdeM9lyjYTBfMB0GA1UdEQQWMBSCDHRlc3Qu
ZXhhbXBsZYcEfwAAATAdBgNVHQ4EFgQUQ5A2smvR+sY31P6Cfug9uGR+QDUwHwYD
VR0jBBgwFoAUgDKglGbrLI6NyPYI39GNQ5HtciAwCgYIKoZIzj0EAwIDRwAwRAIg
V+EzJf6CVIaiO8f7M8rDkMuAEd3oYIFdC0DfdBAN864CIDuk5Aycjl6puoDWXPdw
/KwbXilc8ST/l4nzWT1CTnOh
-----END CERTIFICATE-----
";
/// `EC_CERT`'s serial as openssl prints it.
pub(crate) const EC_SERIAL: &str = "0A1B2C3D4E5F";
/// `EC_CERT`'s key, SEC1 (`EC PRIVATE KEY`).
pub(crate) const EC_KEY: &str = "\
-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIMzwQ13XgR2jugekWfwuk2klZPOYJUseyznUi5GMc+ZRoAoGCCqGSM49
AwEHoUQDQgAE76cnvXYQQ3m8l6XzNyCYvhL47SLF3PfuRpK7M4ENf/YLVWAwEsnM
OW5FaHQj/pChoexxaDOAXEvLw74R14z2XA==
-----END EC PRIVATE KEY-----
";
/// Another EC key (PKCS#8), which matches no certificate here.
pub(crate) const OTHER_EC_KEY: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgmLbrm6f6K2SIkQTu
3DV8m8/3+1dUIjvFaq2GWw6ktdihRANCAATSyg4Po4nGKjYO5Zto5MUIvw0WSAjj
fRVCUtbjht6m45ry/tJtXYl+c/W6CXAbO1w3Fylb3XaABQ/Zv8MK6EqF
-----END PRIVATE KEY-----
";
/// Self-signed RSA 2048 certificate for `rsa.example`.
pub(crate) const RSA_CERT: &str = "\
-----BEGIN CERTIFICATE-----
MIIDJzCCAg+gAwIBAgIUBaMVatrHCVgbGoWbShj42z7LxTAwDQYJKoZIhvcNAQEL
BQAwFjEUMBIGA1UEAwwLcnNhLmV4YW1wbGUwIBcNMjYxMTI2MTcyNTIzWhgPMjEy
NjExMDIxNzI1MjNaMBYxFDASBgNVBAMMC3JzYS5leGFtcGxlMIIBIjANBgkqhkiG
9w0BAQEFAAOCAQ8AMIIBCgKCAQEAzB1Q82friMZIS5JqzsWO4h7leXZbk94Ggp9n
h7FSsQrJtHXVo5lp0FtyWof6wmZnGjxLk+KRdXf6BUK+Ev5Zs+Pzq+/bYyM34jJ0
PjVNmlmOQfPZQzVaiBgO7R+8Z8vz0qZ9R7JjBkgWlKKVkALzGZ9bh/I65bvrwLYN
Isqk79d+VdzGnbPFp6h981Wowlk2TvwxXPTKpb7Zbbeh8dGVAI7iYk8WhmMHwHme
L9suCdiaTPZY5eAAipADHPqRI3xIBaExLzIKgT/KlD5/OsdwOGiZUAuHk++rakw+
Hct69r874OluYHFzB5VUFUjvs3gVsey8e2lyidZzwoOf/UV7ewIDAQABo2swaTAd
BgNVHQ4EFgQU9KvhZge/y+WXeYDut9urouk771AwHwYDVR0jBBgwFoAU9KvhZge/
y+WXeYDut9urouk771AwDwYDVR0TAQH/BAUwAwEB/zAWBgNVHREEDzANggtyc2Eu
ZXhhbXBsZTANBgkqhkiG9w0BAQsFAAOCAQEAR04jqrtx5G3EIg/LB4SmG20/aqbb
DuOIJq0nwpimmRTQTOblrS4z7/eP14F4l+X2JZ3+FdtOzUDi36mQcqGRChvyowKQ
uk8ifjpWZWyGj2UslFEPwW7WaKR+OsFOwvXMT6au0iBFudi4nGzNtzzlF7822/1Q
jGFzdurRCM05441O98K0K4UD10iM0EkR4DVvGAu66lx8tK+PZL0ZYAh+tBKpUuJb
5JLLqNNtLYmEqiTmJjeVTXiAjHUTFkLuqIneSSg4GuWIsyBkdGoaa1DmSyh+utWb
zGJXq4yCHnphzwzwCAs/mrX5lEBdt7mzlWLQhVPqyMHyvR307FybmKvU2g==
-----END CERTIFICATE-----
";
/// `RSA_CERT`'s key, PKCS#1 (`RSA PRIVATE KEY`).
pub(crate) const RSA_KEY: &str = "\
-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAzB1Q82friMZIS5JqzsWO4h7leXZbk94Ggp9nh7FSsQrJtHXV
o5lp0FtyWof6wmZnGjxLk+KRdXf6BUK+Ev5Zs+Pzq+/bYyM34jJ0PjVNmlmOQfPZ
QzVaiBgO7R+8Z8vz0qZ9R7JjBkgWlKKVkALzGZ9bh/I65bvrwLYNIsqk79d+VdzG
nbPFp6h981Wowlk2TvwxXPTKpb7Zbbeh8dGVAI7iYk8WhmMHwHmeL9suCdiaTPZY
5eAAipADHPqRI3xIBaExLzIKgT/KlD5/OsdwOGiZUAuHk++rakw+Hct69r874Olu
YHFzB5VUFUjvs3gVsey8e2lyidZzwoOf/UV7ewIDAQABAoIBAAT8XFYDE6jyIExJ
myFKMxdz5hVlnjlfmCzITwOXVxaVqwqk7DSEUqYxGFB8zNPDI5aWTXRNzvwdvkuI
RKilx4l83R614QKBbDkyvqMnCH+820biJCGfo9f6L8x7/3f7mTeWiIM1U3TmUuLg
5ngE58JC9xM8MqhvmC52Dp5rG8Sd+uqB80I7AddddDqH1j2TWr3wRnLxDVcUgMU0
iVo2PNDXTof13GtxDqlIrexu9gPb9AVT5R1SOl2ORz0XbBcFZ+xYUSs5/2SymR+4
m48dK9/Z/PwhxRGEiMHwIgKOo2SLLS4lMmG8gP8f5g9mdcErqBSvfKeKWEwV6ZlP
1cvqRBkCgYEA6N6WrCOSLn5FYCL7/QkEzxArYeYnDgxGykwZlD9bqHFGf36FHH8C
8WFUX2iITMocTN6IATzP+kwYn9DsA0dZwgDxOKLUoALjaxogpdb+QiYXw7RstSbL
fxO7SwPs0B6NHkxqrjG3wo943t9jHooYNDo/ZVLDBz0uAq1wOWxQ6IMCgYEA4GOL
prjGqpXX6660OGJ6z/9MoW08MbDQtBr8LpLWB5KzjQnW+cs5Q7Twi9BS/qYq0vhf
ZkIZ9nJjwEGVTupC8TPMOHs6KW34gcE3Qf5BVSQP0+jYmY5+gj6Yokk8F+e/+qqw
nR4+3NooJ9D8r+DJW+HgrDQVj4FKU/ENQNABf6kCgYBV3Fxps+PeSKiDveJzdbPU
NP4J5rZXs6cWR+DWjFXbUYjQ0XF7BEmtflmBpCU9SvgMT7CN5EI643vg0UN0Igay
RW6rlz4WkXoQr12CSDcPZMQ2YHwEfv1hKYFRM21JfzpBBaP//kzm68eBRZRiWkB6
YU+mqFFIhgJE8nYCdjGOyQKBgQCThR5015nU4Hp5+fuF7kiroj5xCm2+hW5QWkVd
ITAQ/oOIv+VTiCX3u2dBpA5MWFZjKOMfSWnkOkQWS4erwBuOk+05XNpaDnCIbcy0
WEH/hZvaR4TPP30wh5K1bsxRMw1l8P337cCKVep8cssNng0DmTaqP/vEws1o7ls2
NwolMQKBgFCnn19ovLW7lHUdzctD4B9gAnAHKJK80FMLWUWhi5gmWqrdlFSw3qIF
va0X9HPMgIpdnz8oj8FETbEvlsY8qwp+Ez6sWfAv1P4lVMll4N0m2sNpFurvBTz0
g1ADJyHqF/wheGI6ixNKk9z2Act5X9j1536aq0tqDOcwyL43XYs5
-----END RSA PRIVATE KEY-----
";

/// A server configuration serving `EC_CERT` (signed by `CA_CERT`) for `test.example`.
pub(crate) fn server_config() -> std::sync::Arc<rustls::ServerConfig> {
    use crate::tls::{CertFiles, CertStore};
    let d = std::env::temp_dir().join(format!(
        "wakeproxy-certs-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    let files = CertFiles {
        cert: d.join("c.pem"),
        key: d.join("k.pem"),
    };
    std::fs::write(&files.cert, format!("{EC_CERT}{CA_CERT}")).unwrap();
    std::fs::write(&files.key, EC_KEY).unwrap();
    let provider = crate::tls::provider();
    let store = std::sync::Arc::new(CertStore::new(1, Some(0)));
    let loaded = crate::tls::certs::load(&files, &provider).unwrap().key;
    store.set(0, loaded, vec!["test.example".into()]);
    let _ = std::fs::remove_dir_all(&d);
    crate::tls::server_config(provider, store).unwrap()
}

/// A client configuration trusting `CA_CERT`, offering `versions`.
pub(crate) fn client_config(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(CA_CERT.as_bytes()).unwrap())
        .unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    std::sync::Arc::new(cfg)
}
/// Self-signed EC certificate, serial `5A17`, valid until 2126-11-09T22:27:14Z, whose critical
/// subject alternative names are `*.wild.example`, `Wild.Example`, IP 10.0.0.1, an e-mail
/// address and `www.wild.example` (key not kept: for reading only).
pub(crate) const WILDCARD_CERT: &str = "\
-----BEGIN CERTIFICATE-----
MIIBzTCCAXOgAwIBAgICWhcwCgYIKoZIzj0EAwIwGDEWMBQGA1UEAwwNd2lsZGNh
cmQgdGVzdDAgFw0yNjEyMDMyMjI3MTRaGA8yMTI2MTEwOTIyMjcxNFowGDEWMBQG
A1UEAwwNd2lsZGNhcmQgdGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNeS
Z/wDHFGmVPXgFkEIGQDrCyz5UA9vdBHRHQbm62dC/iL8ZA07cjNdGPVYU+R0Usro
nWxk/HXRqO6h4nYspKWjgaowgacwHQYDVR0OBBYEFJAhAe+Axen707c1akxHDcf+
PQFWMB8GA1UdIwQYMBaAFJAhAe+Axen707c1akxHDcf+PQFWMA8GA1UdEwEB/wQF
MAMBAf8wVAYDVR0RAQH/BEowSIIOKi53aWxkLmV4YW1wbGWCDFdpbGQuRXhhbXBs
ZYcECgAAAYEQb3BzQHdpbGQuZXhhbXBsZYIQd3d3LndpbGQuZXhhbXBsZTAKBggq
hkjOPQQDAgNIADBFAiBOkgMCOXRbIYxz6e81snOitAySinEvjU6dXkmeX5HD5gIh
APvSByFuAAt0pKW4deFzD2oL+AQRZ0C2GhH3f2rAws4a
-----END CERTIFICATE-----
";
