//! `-S/--sshlogin` and `--sshloginfile` in GNU parallel's syntax: which hosts, how to reach
//! them, and how many jobs each may run.
//!
//! An sshlogin is `[N/][sshcommand [options]] [user@]host`: `N/` sets the host's number of
//! job slots (else herd asks the host for its CPU count), an ssh command of its own may
//! come before the host (`ssh -p 2222 server`), and `:` is this machine. A list separates
//! sshlogins with commas or newlines (`\,` or `,,` for a comma inside one).

use std::path::Path;

/// Where an sshlogin runs jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// `:`: this machine, without ssh.
    Local,
    /// A host reached with `ssh`: the sshlogin's own ssh command (else `--ssh`, else `ssh`),
    /// then the destination as ssh takes it (`user@host`, or an alias of `~/.ssh/config`).
    Ssh {
        command: Option<Vec<String>>,
        destination: String,
        /// A port given in the sshlogin (`[::1]:2222`, `::1#2222`, `::1p2222`).
        port: Option<String>,
    },
}

/// One sshlogin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// `N/`: job slots on it, instead of its CPU count.
    pub cpus: Option<usize>,
    pub place: Place,
    /// As written, without `N/`: the joblog's Host column, messages.
    pub name: String,
}

/// A list of sshlogins, as `-S` takes it.
pub fn parse_list(text: &str) -> Result<Vec<Login>, String> {
    split_list(text)
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(parse)
        .collect()
}

/// Splits on commas and newlines; `\,` and `,,` are a comma.
fn split_list(text: &str) -> Vec<String> {
    let mut items = vec![String::new()];
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                chars.next();
                items.last_mut().unwrap().push(',');
            }
            ',' if chars.peek() == Some(&',') => {
                chars.next();
                items.last_mut().unwrap().push(',');
            }
            ',' | '\n' => items.push(String::new()),
            c => items.last_mut().unwrap().push(c),
        }
    }
    items
}

/// One sshlogin.
pub fn parse(text: &str) -> Result<Login, String> {
    let bad = |why: &str| format!("invalid sshlogin '{text}': {why}");
    let mut rest = text.trim();
    if rest.starts_with('@') {
        return Err(bad("host groups (@group/) are not supported yet"));
    }
    let mut cpus = None;
    if let Some((n, after)) = rest.split_once('/') {
        if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
            let n: usize = n
                .parse()
                .map_err(|_| bad("the number of CPUs is too large"))?;
            if n == 0 {
                return Err(bad("0 job slots (N/ must be at least 1)"));
            }
            cpus = Some(n);
            rest = after;
        } else if n.is_empty() && after.starts_with('/') {
            // `//usr/bin/myssh host`: no N, a command with an absolute path.
            rest = after;
        }
    }
    let name = rest.to_string();
    if rest == ":" {
        return Ok(Login {
            cpus,
            place: Place::Local,
            name,
        });
    }
    let words: Vec<&str> = rest.split_whitespace().collect();
    let Some((&destination, command)) = words.split_last() else {
        return Err(bad("no host"));
    };
    if destination.starts_with('-') {
        return Err(bad("the last word must be the host"));
    }
    let (user, host) = match destination.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, destination),
    };
    if user.is_some_and(|u| u.contains(':')) {
        return Err(bad(
            "passwords in sshlogins are not supported: log in with a key (ssh-copy-id) \
             or an ssh agent",
        ));
    }
    let (host, port) = split_port(host).map_err(bad)?;
    let destination = match user {
        Some(user) => format!("{user}@{host}"),
        None => host.to_string(),
    };
    Ok(Login {
        cpus,
        place: Place::Ssh {
            command: (!command.is_empty()).then(|| command.iter().map(|s| s.to_string()).collect()),
            destination,
            port,
        },
        name,
    })
}

/// GNU parallel's ports for IPv6 addresses: `[addr]:port`, `addr#port`, `addrpport` (only
/// where the host holds a `:`, so that a name ending in p and digits stays a name).
fn split_port(host: &str) -> Result<(&str, Option<String>), &'static str> {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = host.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return Err("a [ without its ]");
        };
        return match after.strip_prefix(':') {
            Some(p) if digits(p) => Ok((addr, Some(p.to_string()))),
            None if after.is_empty() => Ok((addr, None)),
            _ => Err("expected [address]:port"),
        };
    }
    if host.contains(':') {
        for sep in ['#', 'p'] {
            if let Some((addr, p)) = host.rsplit_once(sep) {
                if digits(p) && addr.contains(':') {
                    return Ok((addr, Some(p.to_string())));
                }
            }
        }
    }
    Ok((host, None))
}

/// The sshlogins in a file: one per line; empty lines and lines starting with `#` are
/// ignored. `..` is `~/.parallel/sshloginfile`, `.` is `/etc/parallel/sshloginfile`, as in
/// GNU parallel; a name not found is looked for in `~/.parallel` too.
pub fn read_file(name: &Path) -> Result<Vec<Login>, String> {
    let path = resolve(name);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read the sshlogin file {}: {e}", path.display()))?;
    let mut logins = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        logins.push(parse(line).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    Ok(logins)
}

/// Where `--slf NAME` reads from.
pub fn resolve(name: &Path) -> std::path::PathBuf {
    let home = || std::env::var_os("HOME").map(std::path::PathBuf::from);
    if name.as_os_str() == ".." {
        if let Some(h) = home() {
            return h.join(".parallel/sshloginfile");
        }
    }
    if name.as_os_str() == "." {
        return "/etc/parallel/sshloginfile".into();
    }
    if !name.exists() && name.is_relative() {
        if let Some(h) = home() {
            let there = h.join(".parallel").join(name);
            if there.exists() {
                return there;
            }
        }
    }
    name.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh(cpus: Option<usize>, command: Option<&[&str]>, destination: &str) -> Place {
        let _ = cpus;
        Place::Ssh {
            command: command.map(|c| c.iter().map(|s| s.to_string()).collect()),
            destination: destination.into(),
            port: None,
        }
    }

    #[test]
    fn ipv6_ports() {
        for (text, destination, port) in [
            ("[::1]:2222", "::1", Some("2222")),
            ("me@[fe80::1]:22", "me@fe80::1", Some("22")),
            ("::1#2222", "::1", Some("2222")),
            ("::1p2222", "::1", Some("2222")),
            ("::1", "::1", None),
            ("shop2", "shop2", None),
        ] {
            let l = parse(text).unwrap();
            assert_eq!(
                l.place,
                Place::Ssh {
                    command: None,
                    destination: destination.into(),
                    port: port.map(String::from),
                },
                "{text}"
            );
        }
    }

    #[test]
    fn gnu_forms() {
        let l =
            parse_list("server, user@h2,8/big,:,4/ssh -p 2222 quad, //usr/bin/myssh -l me hexa")
                .unwrap();
        assert_eq!(l.len(), 6);
        assert_eq!((l[0].cpus, &l[0].place), (None, &ssh(None, None, "server")));
        assert_eq!(l[1].place, ssh(None, None, "user@h2"));
        assert_eq!((l[2].cpus, &l[2].name[..]), (Some(8), "big"));
        assert_eq!(l[3].place, Place::Local);
        assert_eq!(l[4].cpus, Some(4));
        assert_eq!(l[4].place, ssh(None, Some(&["ssh", "-p", "2222"]), "quad"));
        assert_eq!(l[5].cpus, None);
        assert_eq!(
            l[5].place,
            ssh(None, Some(&["/usr/bin/myssh", "-l", "me"]), "hexa")
        );
    }

    #[test]
    fn commas_escaped_and_newlines() {
        let l = parse_list("a\\,b,c,,d\ne").unwrap();
        let names: Vec<_> = l.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["a,b", "c,d", "e"]);
    }

    #[test]
    fn refused_with_reasons() {
        for (text, why) in [
            ("user:secret@host", "passwords"),
            ("0/host", "at least 1"),
            ("@grp/host", "host groups"),
            ("ssh -p", "the last word"),
        ] {
            let e = parse_list(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
