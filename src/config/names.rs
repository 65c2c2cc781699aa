//! Service names: the rules Docker applies to what wakeproxy names after a service, checked
//! when the config is read instead of failing each start later. Pure.
//!
//! A service's name is used as it is, with nothing added before or after it: as the container
//! name (`POST /containers/create?name=<name>`), as the container's alias on
//! `docker_network`, which is the DNS name the proxy connects to in `docker_dns` mode, and
//! as the swarm service name and alias with `mode: swarm`. (The container's host name stays
//! Docker's default, the short container ID.) So:
//! - every name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*` and at most [`MAX_NAME_CHARS`], one DNS label
//!   (RFC 1035 section 2.3.4), which is also Docker's limit for swarm service names; a longer
//!   alias cannot be looked up at all, so every request would fail;
//! - a container (Docker's container name pattern has a second, mandatory character): at
//!   least 2 characters;
//! - a swarm service (Docker requires a DNS name component): no `.`, and it ends with a
//!   letter or digit.

use super::formats::is_docker_name;

/// The longest service name: one DNS label.
pub(super) const MAX_NAME_CHARS: usize = 63;

/// What the name will name in Docker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NameUse {
    /// A fixed `upstream`: only the proxy itself uses the name.
    Upstream,
    /// A container (`mode: container`).
    Container,
    /// A swarm service (`mode: swarm`).
    Swarm,
}

/// Checks a service name for its use; the message names the rule and the limit.
pub(super) fn check_service_name(name: &str, usage: NameUse) -> Result<(), String> {
    let shown = shown(name);
    if !is_docker_name(name) {
        return Err(format!(
            "{shown} is not a valid name: use letters, digits, \"_\", \".\" and \"-\", \
             starting with a letter or digit"
        ));
    }
    let chars = name.len(); // ASCII, as just checked
    if chars > MAX_NAME_CHARS {
        return Err(format!(
            "is {chars} characters long, more than the limit of {MAX_NAME_CHARS} \
             ({shown}): the name is the DNS name wakeproxy reaches the service by, and a DNS \
             label holds at most {MAX_NAME_CHARS} characters (Docker's limit for swarm service \
             names too)"
        ));
    }
    match usage {
        NameUse::Container if chars < 2 => Err(format!(
            "{shown} is too short to name a container: Docker needs at least 2 characters"
        )),
        NameUse::Swarm
            if name.contains('.') || !name.ends_with(|c: char| c.is_ascii_alphanumeric()) =>
        {
            Err(format!(
                "{shown} cannot name a swarm service: Docker allows letters, digits, \"-\" \
                 and \"_\" there, no \".\", and the name must end with a letter or digit"
            ))
        }
        _ => Ok(()),
    }
}

/// The name quoted for a message, cut short when long.
fn shown(name: &str) -> String {
    const HEAD: usize = 24;
    if name.chars().count() <= HEAD {
        format!("{name:?}")
    } else {
        let head: String = name.chars().take(HEAD).collect();
        format!("\"{head}...\"")
    }
}

#[cfg(test)]
mod tests {
    use super::NameUse::*;
    use super::*;

    #[test]
    fn ordinary_names_pass_for_every_use() {
        for name in ["app", "my-app_2", "A1", &"x".repeat(63)] {
            for usage in [Upstream, Container, Swarm] {
                assert_eq!(check_service_name(name, usage), Ok(()), "{name} {usage:?}");
            }
        }
    }

    #[test]
    fn docker_characters_only() {
        for name in ["", "-x", "_x", ".x", "a b", "a/b", "ä"] {
            let msg = check_service_name(name, Upstream).unwrap_err();
            assert!(msg.contains("is not a valid name"), "{name}: {msg}");
        }
    }

    #[test]
    fn longer_than_one_dns_label_is_refused_naming_the_limit() {
        for len in [64, 256, 300] {
            let name = "a".repeat(len);
            for usage in [Upstream, Container, Swarm] {
                let msg = check_service_name(&name, usage).unwrap_err();
                assert!(
                    msg.starts_with(&format!(
                        "is {len} characters long, more than the limit of 63"
                    )),
                    "{msg}"
                );
                assert!(msg.contains("DNS"), "{msg}");
                assert!(msg.len() < 300, "the name is cut short: {msg}");
            }
        }
    }

    #[test]
    fn a_container_needs_two_characters() {
        let msg = check_service_name("a", Container).unwrap_err();
        assert!(msg.contains("at least 2 characters"), "{msg}");
        assert_eq!(check_service_name("a", Upstream), Ok(()));
        assert_eq!(check_service_name("a", Swarm), Ok(()));
        assert_eq!(check_service_name("ab", Container), Ok(()));
    }

    #[test]
    fn a_swarm_service_has_no_dots_and_ends_with_a_letter_or_digit() {
        for name in ["my.app", "app-", "app_"] {
            let msg = check_service_name(name, Swarm).unwrap_err();
            assert!(msg.contains("cannot name a swarm service"), "{name}: {msg}");
            assert_eq!(check_service_name(name, Container), Ok(()), "{name}");
        }
        assert_eq!(check_service_name("my-app_2", Swarm), Ok(()));
    }
}
