//! Images from a registry, against the real Docker daemon and a real registry on 127.0.0.1
//! (Debian's docker-registry): an image missing on the host is pulled by the first request,
//! once for every service that shares it; `pull: always` picks up a new digest under the same
//! tag and recreates the container; `pull: never` and an image the registry lacks say why;
//! `proxy-pull` fetches ahead of a reload; `proxy-validate-config --docker` says what the host
//! offers each service.

mod support;

use std::time::Duration;

use support::docker::*;
use support::registry::Registry;
use support::*;

fn global(g: &DockerGuard, extra: &str) -> String {
    format!(
        "  connect_mode: host_port\n  docker_network: ''\n  instance: {}\n{extra}",
        g.instance
    )
}

fn service(name: &str, path: &str, image: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    path: {path}\n    image: {image}\n    health_path: /health\n    start_timeout: 30\n{extra}"
    )
}

/// Removes a local image tag on drop (the pulled copies of this test).
struct Untag(Vec<String>);

impl Drop for Untag {
    fn drop(&mut self) {
        for t in &self.0 {
            let _ = docker_try(&["rmi", t]);
        }
    }
}

#[test]
fn an_image_missing_on_the_host_is_pulled_once_by_the_first_requests() {
    let mut g = DockerGuard::new("pull");
    let dir = TempDir::new("pull");
    let reg = Registry::start(dir.path());
    let image = reg.image(&format!("wpt-pull-{}", std::process::id()), "1");
    reg.push(IMAGE, &image);
    let _untag = Untag(vec![image.clone()]);
    assert!(
        docker_try(&["image", "inspect", &image]).is_none(),
        "the image is not on the host before the test"
    );
    let (a, b) = (g.name("a"), g.name("b"));
    let services = service(&a, "/a", &image, "") + &service(&b, "/b", &image, "");
    let mut p = TestProxy::start(&config_with(&global(&g, ""), &services));
    // 20 first requests at once, 10 for each of the two services sharing the image.
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let addr = p.addr;
            let path = if i % 2 == 0 { "/a" } else { "/b" };
            std::thread::spawn(move || get(addr, &format!("{path}/req/{i}")))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200, "request {i}: {}\n{}", r.text(), p.proc.log());
    }
    p.proc.wait_line("pulling ", Duration::from_secs(10));
    let log = p.proc.log();
    assert_eq!(log.matches("pulling ").count(), 1, "one pull: {log}");
    let m = prom_parse(&get(p.addr, "/proxy/metrics").text());
    assert_eq!(
        sample(&m, "wakeproxy_image_pulls_total", &[("result", "ok")]),
        1.0
    );
    assert_eq!(service_status(p.addr, &a)["pull_policy"], "missing");
    assert!(docker_try(&["image", "inspect", &image]).is_some());
}

#[test]
fn pull_always_picks_up_a_new_digest_and_recreates_the_container() {
    let mut g = DockerGuard::new("pullalways");
    let dir = TempDir::new("pullalways");
    let reg = Registry::start(dir.path());
    let image = reg.image(&format!("wpt-always-{}", std::process::id()), "latest");
    let first = reg.push(IMAGE, &image);
    let _untag = Untag(vec![image.clone()]);
    let name = g.name("svc");
    let mut p = TestProxy::start(&config_with(
        &global(&g, ""),
        &service(
            &name,
            "/svc",
            &image,
            "    pull: always\n    idle_timeout: 1\n",
        ),
    ));
    assert_eq!(get(p.addr, "/svc/x").status, 200, "{}", p.proc.log());
    let image_of = |n: &str| inspect(n, "{{.Image}}").unwrap();
    assert_eq!(image_of(&name), first);
    let id1 = inspect(&name, "{{.Id}}").unwrap();
    // A new image under the same tag; the service goes idle and stops.
    let second = reg.push(IMAGE_HEALTHCHECK, &image);
    assert_ne!(first, second);
    wait_for("the idle stop", Duration::from_secs(30), || {
        (service_status(p.addr, &name)["status"] == "stopped").then_some(())
    });
    assert_eq!(get(p.addr, "/svc/x").status, 200, "{}", p.proc.log());
    assert_eq!(image_of(&name), second, "{}", p.proc.log());
    assert_ne!(inspect(&name, "{{.Id}}").unwrap(), id1, "a new container");
    p.proc.wait_line("has a new image", Duration::from_secs(10));
}

#[test]
fn an_image_nobody_can_have_gives_503_saying_why() {
    let mut g = DockerGuard::new("pullfail");
    let dir = TempDir::new("pullfail");
    let reg = Registry::start(dir.path());
    let absent = reg.image("wpt-absent", "1");
    let (never, missing) = (g.name("never"), g.name("missing"));
    let services = service(&never, "/never", &absent, "    pull: never\n")
        + &service(&missing, "/missing", &absent, "");
    let p = TestProxy::start(&config_with(&global(&g, ""), &services));
    let r = get(p.addr, "/never/x");
    assert_eq!(r.status, 503);
    assert!(r.text().contains("pull: never"), "{}", r.text());
    let r = get(p.addr, "/missing/x");
    assert_eq!(r.status, 503);
    assert!(
        r.text().contains("not found") && r.text().contains(&absent),
        "{}",
        r.text()
    );
    let m = prom_parse(&get(p.addr, "/proxy/metrics").text());
    assert_eq!(
        sample(&m, "wakeproxy_image_pulls_total", &[("result", "failed")]),
        1.0
    );
}

#[test]
fn proxy_pull_fetches_the_images_and_names_the_service_it_cannot_serve() {
    let mut g = DockerGuard::new("proxypull");
    let dir = TempDir::new("proxypull");
    let reg = Registry::start(dir.path());
    let image = reg.image(&format!("wpt-proxypull-{}", std::process::id()), "1");
    reg.push(IMAGE, &image);
    let _untag = Untag(vec![image.clone()]);
    let (good, bad) = (g.name("good"), g.name("bad"));
    let services = service(&good, "/good", &image, "")
        + &service(&bad, "/bad", &reg.image("wpt-absent", "1"), "");
    let config = dir.path().join("proxy.yaml");
    std::fs::write(&config, config_with(&global(&g, ""), &services)).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wakeproxy"))
            .arg("proxy-pull")
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    let (code, text) = run(&[&good]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&format!("{good}: pulled {image}")), "{text}");
    assert!(docker_try(&["image", "inspect", &image]).is_some());
    let (code, text) = run(&[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("no image for {bad}")) && text.contains("not found"),
        "{text}"
    );
    assert!(!text.contains(&format!("no image for {good}")), "{text}");
}

#[test]
fn validate_with_docker_reports_what_the_host_offers_each_service() {
    let mut g = DockerGuard::new("checks");
    let dir = TempDir::new("checks");
    let (here, never, sw) = (g.name("here"), g.name("never"), g.name("sw"));
    let services = service(&here, "/here", IMAGE, "")
        + &service(&never, "/never", "wpt-not-here:1", "    pull: never\n")
        + &service(&sw, "/sw", IMAGE, "    mode: swarm\n");
    let global = format!(
        "  connect_mode: docker_dns\n  docker_network: wpt-checks-net\n  instance: {}\n",
        g.instance
    );
    let config = dir.path().join("proxy.yaml");
    std::fs::write(&config, config_with(&global, &services)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wakeproxy"))
        .args(["proxy-validate-config", "--docker", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("ok: {here}: image {IMAGE} present")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "warning: {never}: image wpt-not-here:1 missing and pull: never"
        )),
        "{text}"
    );
    let ipvs = std::path::Path::new("/proc/net/ip_vs").exists();
    assert_eq!(
        text.contains(&format!("warning: {sw}: endpoint_mode: vip needs IPVS")),
        !ipvs,
        "IPVS on this host: {ipvs}; {text}"
    );
    assert!(
        text.contains("warning: global: connect_mode: docker_dns"),
        "the tests run the proxy outside a container: {text}"
    );
}

#[test]
fn registry_credentials_are_sent_and_wrong_ones_give_503_unauthorized() {
    let mut g = DockerGuard::new("pullauth");
    let dir = TempDir::new("pullauth");
    let password = "s3cret-Passw0rd-for-the-tests";
    let reg = Registry::start_with_auth(dir.path(), "deployer", password);
    let image = reg.image(&format!("wpt-private-{}", std::process::id()), "1");
    reg.push(IMAGE, &image);
    let _untag = Untag(vec![image.clone()]);
    let name = g.name("svc");
    let proxy_with = |auths: &str| {
        let file = dir.path().join(format!("auth-{}.json", auths.len()));
        std::fs::write(&file, format!("{{\"auths\": {{{auths}}}}}")).unwrap();
        let extra = format!("  registry_auth_file: {}\n", file.display());
        TestProxy::start(&config_with(
            &global(&g, &extra),
            &service(&name, "/svc", &image, ""),
        ))
    };
    let wrong_password = "not-the-password-0123";
    let mut p = proxy_with(&format!(
        "\"{}\": {{\"username\": \"deployer\", \"password\": \"{wrong_password}\"}}",
        reg.addr
    ));
    let r = get(p.addr, "/svc/x");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("unauthorized"), "{}", r.text());
    p.proc.wait_line("unauthorized", Duration::from_secs(10));
    let log = p.proc.log();
    assert!(!log.contains(wrong_password) && !r.text().contains(wrong_password));
    drop(p);
    // The right ones, as `docker login` writes them: base64 of user:password under "auth".
    let out = std::process::Command::new("base64")
        .args(["-w0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(format!("deployer:{password}").as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let auth = String::from_utf8(out.stdout).unwrap();
    let p = proxy_with(&format!(
        "\"https://{}\": {{\"auth\": \"{auth}\"}}",
        reg.addr
    ));
    let r = get(p.addr, "/svc/x");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), p.proc.log());
    let log = p.proc.log();
    assert!(!log.contains(password) && !log.contains(&auth), "{log}");
    let status = get(p.addr, "/proxy/status").text();
    assert!(!status.contains(password) && !status.contains(&auth));
}
