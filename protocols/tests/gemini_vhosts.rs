//! Virtual hosts over real TLS sockets: the URL's host picks the content,
//! SNI picks the certificate, an unknown host is `53`.

mod gemini_common;

use gemini_common::*;
use torsion_protocols::gemini::{GeminiConfig, GeminiFactory, Root, VirtualHost};
use torsion_reactor::tls::certs::fingerprint;

#[test]
fn host_selects_content_and_sni_selects_certificate() {
    let a = TempDir::new("vhost-a");
    let b = TempDir::new("vhost-b");
    let state = TempDir::new("vhost-state");
    a.write("index.gmi", "# site A\n");
    b.write("index.gmi", "# site B\n");
    a.script(
        "cgi-bin/name.sh",
        "#!/bin/sh\nprintf '20 text/plain\\r\\n%s' \"$SERVER_NAME\"\n",
    );
    let tls = server_tls(state.path(), &["a.test"], &[&["b.test", "*.b.test"]]);
    let fingerprints = tls.certs().fingerprints();
    let fp_of = |name: &str| {
        fingerprints
            .iter()
            .find(|(names, _)| names.iter().any(|n| n == name))
            .map(|(_, fp)| fp.clone())
            .unwrap()
    };
    let (fp_a, fp_b) = (fp_of("a.test"), fp_of("b.test"));
    assert_ne!(fp_a, fp_b);

    let mut vhost_a = VirtualHost::new("a.test", Root::Dir(a.path().to_path_buf()));
    vhost_a.default_lang = Some("en".into());
    let mut vhost_b = VirtualHost::new("b.test", Root::Dir(b.path().to_path_buf()));
    vhost_b.hostnames.push("*.b.test".into());
    vhost_b.default_lang = Some("de".into());
    let config = GeminiConfig {
        vhosts: vec![vhost_a, vhost_b],
        ..GeminiConfig::default()
    };
    let server = Server::start(tls, move || GeminiFactory::new(config, 0).unwrap());

    let fetch = |sni: &str, url: &str| {
        let mut tls = connect(server.addr, sni, client_config(None));
        let cert = tls.conn.peer_certificates().unwrap()[0].to_vec();
        std::io::Write::write_all(&mut tls, format!("{url}\r\n").as_bytes()).unwrap();
        (fingerprint(&cert), Answer::parse(read_all(&mut tls).0))
    };

    let (fp, answer) = fetch("a.test", "gemini://a.test/");
    assert_eq!(fp, fp_a);
    assert_eq!(
        (answer.meta.as_str(), answer.text().as_str()),
        ("text/gemini; lang=en", "# site A\n")
    );
    let (fp, answer) = fetch("b.test", "gemini://B.TEST/");
    assert_eq!(fp, fp_b);
    assert_eq!(
        (answer.meta.as_str(), answer.text().as_str()),
        ("text/gemini; lang=de", "# site B\n")
    );
    let (fp, answer) = fetch("www.b.test", "gemini://www.b.test/");
    assert_eq!(fp, fp_b, "wildcard certificate");
    assert_eq!(answer.text(), "# site B\n");
    // The URL's host picks the content, whatever the SNI.
    let (fp, answer) = fetch("a.test", "gemini://b.test/");
    assert_eq!(fp, fp_a);
    assert_eq!(answer.text(), "# site B\n");
    // An unknown SNI gets the default certificate; an unknown host is 53.
    let (fp, answer) = fetch("c.test", "gemini://c.test/");
    assert_eq!(fp, fp_a);
    assert_eq!(answer.status, 53);
    // Each host has its own CGI directory and SERVER_NAME.
    let (_, answer) = fetch("a.test", "gemini://a.test/cgi-bin/name.sh");
    assert_eq!(answer.text(), "a.test");
    let (_, answer) = fetch("b.test", "gemini://b.test/cgi-bin/name.sh");
    assert_eq!(answer.status, 51);
}
