//! `proxy-pull`: pulls the images of a config's services (all, or the named ones) so that a
//! deploy script has them before it reloads the proxy. A progress line on a terminal, plain
//! lines otherwise; exit 0 only when every image is present.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{self, PullPolicy, Service};
use crate::docker::{Docker, PullFigures};
use crate::lifecycle::engine::DockerEngine;
use crate::lifecycle::pulls::Pulls;

use super::cli::{CliError, PullArgs};

/// `proxy-pull`.
pub fn run_pull(args: &PullArgs) -> Result<(), CliError> {
    let cfg = config::load(&args.config).map_err(CliError::Config)?;
    let chosen = chosen(&cfg.services, &args.services)?;
    let docker = Docker::from_env().map_err(|e| CliError::Startup(e.to_string()))?;
    docker
        .negotiate()
        .map_err(|e| CliError::Startup(e.to_string()))?;
    let engine = DockerEngine {
        docker,
        pulls: Arc::new(Pulls::default()),
        registry_auth_file: cfg.global.registry_auth_file.clone(),
    };
    let tty = std::io::stdout().is_terminal();
    let mut failed = Vec::new();
    for s in chosen {
        // Upstreams and existing containers have no image of wakeproxy's to pull.
        let Some(c) = s.container().filter(|c| c.existing.is_none()) else {
            continue;
        };
        let outcome = match c.pull.policy {
            PullPolicy::Never => present(&engine, &c.image, "pull: never"),
            _ => pull_one(&engine, &s.name, &c.image, c.pull.timeout, tty),
        };
        match outcome {
            Ok(line) => println!("{}: {line}", s.name),
            Err(why) => {
                println!("{}: {why}", s.name);
                failed.push(s.name.clone());
            }
        }
    }
    match failed.is_empty() {
        true => Ok(()),
        false => Err(CliError::Startup(format!(
            "no image for {}",
            failed.join(", ")
        ))),
    }
}

/// The services named (all when none are), in config order; a name that is not a service
/// with an image is a usage error.
fn chosen<'a>(services: &'a [Service], names: &[String]) -> Result<Vec<&'a Service>, CliError> {
    for n in names {
        if !services
            .iter()
            .any(|s| s.name == *n && s.container().is_some())
        {
            return Err(CliError::Usage(format!(
                "{n} is not a service with an image in this config"
            )));
        }
    }
    Ok(services
        .iter()
        .filter(|s| s.container().is_some())
        .filter(|s| names.is_empty() || names.contains(&s.name))
        .collect())
}

fn present(engine: &DockerEngine, image: &str, why: &str) -> Result<String, String> {
    match engine.docker.image_inspect(image) {
        Ok(Some(_)) => Ok(format!("{image} present ({why})")),
        Ok(None) => Err(format!("{image} missing ({why}: build or pull it)")),
        Err(e) => Err(e.to_string()),
    }
}

fn pull_one(
    engine: &DockerEngine,
    name: &str,
    image: &str,
    timeout: Duration,
    tty: bool,
) -> Result<String, String> {
    if !tty {
        println!("{name}: pulling {image}");
    }
    let started = Instant::now();
    let mut last = Instant::now();
    let mut show = |f: PullFigures| {
        if tty && last.elapsed() >= Duration::from_millis(100) {
            last = Instant::now();
            print!("\r\x1b[K{name}: {}", bar(image, f));
            let _ = std::io::stdout().flush();
        }
    };
    let result = engine.fetch(image, timeout, &mut show);
    if tty {
        print!("\r\x1b[K");
    }
    result.map(|()| format!("pulled {image} in {:.1} s", started.elapsed().as_secs_f64()))
}

/// `image [#####.....] 2/5 layers 12.0/40.5 MB`.
fn bar(image: &str, f: PullFigures) -> String {
    const WIDTH: u64 = 20;
    let filled = (f.bytes_done * WIDTH)
        .checked_div(f.bytes_total)
        .unwrap_or(0)
        .min(WIDTH) as usize;
    format!(
        "{image} [{}{}] {}/{} layers {:.1}/{:.1} MB",
        "#".repeat(filled),
        ".".repeat(WIDTH as usize - filled),
        f.layers_done,
        f.layers_total,
        f.bytes_done as f64 / 1e6,
        f.bytes_total as f64 / 1e6
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_bytes() {
        let f = PullFigures {
            layers_done: 2,
            layers_total: 5,
            bytes_done: 10_000_000,
            bytes_total: 40_000_000,
        };
        assert_eq!(
            bar("app:1", f),
            "app:1 [#####...............] 2/5 layers 10.0/40.0 MB"
        );
        assert!(bar("a", PullFigures::default()).contains("[....................]"));
    }

    #[test]
    fn services_are_chosen_by_name() {
        let text = "global:\n  bearer_token: 7b160a90a2bba89b2100d1f018f8eaa4\nservices:\n  - name: aa\n    path: /a\n    image: a:1\n  - name: bb\n    path: /b\n    image: b:1\n  - name: up\n    path: /\n    upstream: 127.0.0.1:9\n";
        let cfg = crate::config::parse(text, "t.yaml", &|_| None).unwrap();
        let names = |v: Vec<&Service>| v.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(chosen(&cfg.services, &[]).unwrap()), ["aa", "bb"]);
        assert_eq!(
            names(chosen(&cfg.services, &["bb".into()]).unwrap()),
            ["bb"]
        );
        assert!(chosen(&cfg.services, &["up".into()]).is_err());
        assert!(chosen(&cfg.services, &["zz".into()]).is_err());
    }
}
