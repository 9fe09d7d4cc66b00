//! Command templates and their placeholders.
//!
//! A placeholder is `{` + optional source number + optional modifier + `}`, or `{#}` / `{%}`:
//! `{}` `{.}` `{/}` `{//}` `{/.}` `{#}` `{%}` `{N}` `{N.}` `{N/}` `{N//}` `{N/.}`. Any other
//! brace text (`awk '{print $1}'`) is literal, so commands that use braces need no escaping.

use std::fmt;

/// What a placeholder does to its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Modifier {
    Whole,
    NoExtension,
    Basename,
    Dirname,
    BasenameNoExtension,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(Vec<u8>),
    /// A value: `source` is 1-based, or `None` for all sources joined by spaces.
    Value {
        source: Option<usize>,
        modifier: Modifier,
    },
    Seq,
    Slot,
}

/// One argument of a command template.
#[derive(Debug, Clone)]
struct ArgTemplate {
    pieces: Vec<Piece>,
}

/// A bad placeholder, caught before any job starts.
#[derive(Debug)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn parse_placeholder(inner: &[u8]) -> Option<Piece> {
    match inner {
        b"#" => return Some(Piece::Seq),
        b"%" => return Some(Piece::Slot),
        _ => {}
    }
    let digits = inner.iter().take_while(|b| b.is_ascii_digit()).count();
    let source = if digits == 0 {
        None
    } else {
        Some(
            std::str::from_utf8(&inner[..digits])
                .ok()?
                .parse::<usize>()
                .ok()?,
        )
    };
    let modifier = match &inner[digits..] {
        b"" => Modifier::Whole,
        b"." => Modifier::NoExtension,
        b"/" => Modifier::Basename,
        b"//" => Modifier::Dirname,
        b"/." => Modifier::BasenameNoExtension,
        _ => return None,
    };
    Some(Piece::Value { source, modifier })
}

fn parse_arg(arg: &[u8]) -> ArgTemplate {
    let mut pieces = Vec::new();
    let mut literal = Vec::new();
    let mut i = 0;
    while i < arg.len() {
        if arg[i] == b'{' {
            if let Some(len) = arg[i + 1..].iter().position(|&b| b == b'}') {
                if let Some(piece) = parse_placeholder(&arg[i + 1..i + 1 + len]) {
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(piece);
                    i += len + 2;
                    continue;
                }
            }
        }
        literal.push(arg[i]);
        i += 1;
    }
    if !literal.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    ArgTemplate { pieces }
}

/// The last path component's extension removed (`dir/a.tar.gz` → `dir/a.tar`); a leading dot
/// is not an extension (`.bashrc` stays).
fn no_extension(v: &[u8]) -> &[u8] {
    let start = v.iter().rposition(|&b| b == b'/').map_or(0, |p| p + 1);
    match v[start..].iter().rposition(|&b| b == b'.') {
        Some(dot) if dot > 0 => &v[..start + dot],
        _ => v,
    }
}

fn basename(v: &[u8]) -> &[u8] {
    let trimmed = if v.len() > 1 && v.ends_with(b"/") {
        &v[..v.len() - 1]
    } else {
        v
    };
    match trimmed.iter().rposition(|&b| b == b'/') {
        Some(p) => &trimmed[p + 1..],
        None => trimmed,
    }
}

fn dirname(v: &[u8]) -> &[u8] {
    match v.iter().rposition(|&b| b == b'/') {
        Some(0) => b"/",
        Some(p) => &v[..p],
        None => b".",
    }
}

fn apply(modifier: Modifier, v: &[u8]) -> &[u8] {
    match modifier {
        Modifier::Whole => v,
        Modifier::NoExtension => no_extension(v),
        Modifier::Basename => basename(v),
        Modifier::Dirname => dirname(v),
        Modifier::BasenameNoExtension => no_extension(basename(v)),
    }
}

/// Quotes `v` for the shell `--shell` uses: `sh` on Unix, `cmd` on Windows.
pub fn shell_quote(v: &[u8]) -> Vec<u8> {
    if cfg!(windows) {
        cmd_quote(v)
    } else {
        sh_quote(v)
    }
}

/// Quotes `v` for `cmd`: `"…"`, with each `"` doubled, which both `cmd` and the MSVC argument
/// parser read back as one `"`. (`cmd` still expands `%VAR%` inside quotes; nothing escapes that.)
fn cmd_quote(v: &[u8]) -> Vec<u8> {
    let safe = !v.is_empty()
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./\\=:,+@".contains(b));
    if safe {
        return v.to_vec();
    }
    let mut out = vec![b'"'];
    for &b in v {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
    out
}

/// Quotes `v` for a POSIX shell: `'…'`, with each `'` written as `'\''`.
fn sh_quote(v: &[u8]) -> Vec<u8> {
    let safe = !v.is_empty()
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(b));
    if safe {
        return v.to_vec();
    }
    let mut out = Vec::with_capacity(v.len() + 2);
    out.push(b'\'');
    for &b in v {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

/// A command line with placeholders.
#[derive(Debug, Clone)]
pub struct Template {
    args: Vec<ArgTemplate>,
    has_value_placeholder: bool,
}

/// What one job's placeholders are filled with.
pub struct Fill<'a> {
    pub values: &'a [Vec<u8>],
    pub seq: u64,
    pub slot: usize,
}

impl Template {
    /// Parses `args` and checks each `{N}` against the number of input sources (`None` with
    /// `--colsep`, where each line has its own number of columns: a missing one is empty).
    pub fn parse(args: &[Vec<u8>], sources: Option<usize>) -> Result<Template, TemplateError> {
        let args: Vec<ArgTemplate> = args.iter().map(|a| parse_arg(a)).collect();
        let mut has_value_placeholder = false;
        for piece in args.iter().flat_map(|a| &a.pieces) {
            if let Piece::Value { source, .. } = piece {
                has_value_placeholder = true;
                if let Some(n) = *source {
                    if n == 0 {
                        return Err(TemplateError(
                            "placeholder {0} names no input: sources count from {1}".into(),
                        ));
                    }
                    if let Some(sources) = sources.filter(|&s| n > s) {
                        let have = if sources == 1 {
                            "there is 1 input source".to_string()
                        } else {
                            format!("there are {sources} input sources")
                        };
                        return Err(TemplateError(format!(
                            "placeholder {{{n}}} names input source {n}, but {have}"
                        )));
                    }
                }
            }
        }
        Ok(Template {
            args,
            has_value_placeholder,
        })
    }

    fn render_arg(&self, arg: &ArgTemplate, fill: &Fill<'_>, quote: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in &arg.pieces {
            match piece {
                Piece::Literal(l) => out.extend_from_slice(l),
                Piece::Seq => out.extend_from_slice(fill.seq.to_string().as_bytes()),
                Piece::Slot => out.extend_from_slice(fill.slot.to_string().as_bytes()),
                Piece::Value { source, modifier } => {
                    let joined;
                    let value: &[u8] = match source {
                        Some(n) => fill.values.get(n - 1).map_or(&[][..], |v| &v[..]),
                        None if fill.values.len() == 1 => &fill.values[0],
                        None => {
                            joined = fill.values.join(&b' ');
                            &joined
                        }
                    };
                    let v = apply(*modifier, value);
                    if quote {
                        out.extend_from_slice(&shell_quote(v));
                    } else {
                        out.extend_from_slice(v);
                    }
                }
            }
        }
        out
    }

    /// The argument vector to execute directly. Without a value placeholder, the values are
    /// appended, one argument each.
    pub fn render_direct(&self, fill: &Fill<'_>) -> Vec<Vec<u8>> {
        let mut argv: Vec<Vec<u8>> = self
            .args
            .iter()
            .map(|a| self.render_arg(a, fill, false))
            .collect();
        if !self.has_value_placeholder {
            argv.extend(fill.values.iter().cloned());
        }
        argv
    }

    /// A shell script: the template's words joined by spaces, values shell-quoted. Without a
    /// value placeholder, the quoted values are appended.
    pub fn render_shell(&self, fill: &Fill<'_>) -> Vec<u8> {
        let mut words: Vec<Vec<u8>> = self
            .args
            .iter()
            .map(|a| self.render_arg(a, fill, true))
            .collect();
        if !self.has_value_placeholder {
            words.extend(fill.values.iter().map(|v| shell_quote(v)));
        }
        words.join(&b' ')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(args: &[&str], values: &[&str]) -> Vec<String> {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        let values: Vec<Vec<u8>> = values.iter().map(|a| a.as_bytes().to_vec()).collect();
        let t = Template::parse(&args, Some(values.len())).unwrap();
        t.render_direct(&Fill {
            values: &values,
            seq: 7,
            slot: 3,
        })
        .into_iter()
        .map(|a| String::from_utf8(a).unwrap())
        .collect()
    }

    #[test]
    fn placeholders() {
        assert_eq!(
            render(
                &["x{}", "{.}", "{/}", "{//}", "{/.}", "{#}", "{%}"],
                &["dir/sub/a.tar.gz"]
            ),
            [
                "xdir/sub/a.tar.gz",
                "dir/sub/a.tar",
                "a.tar.gz",
                "dir/sub",
                "a.tar",
                "7",
                "3"
            ]
        );
        assert_eq!(
            render(&["{//}", "{.}", "{/.}"], &["file"]),
            [".", "file", "file"]
        );
        assert_eq!(render(&["{.}"], &[".bashrc"]), [".bashrc"]);
        assert_eq!(render(&["{.}"], &["a.b/c"]), ["a.b/c"]);
        assert_eq!(
            render(&["{2}-{1}", "{}", "{2/.}"], &["a", "x/b.c"]),
            ["x/b.c-a", "a x/b.c", "b"]
        );
    }

    #[test]
    fn no_placeholder_appends_each_value() {
        assert_eq!(render(&["echo"], &["a b", "c"]), ["echo", "a b", "c"]);
        assert_eq!(render(&["echo", "{#}"], &["v"]), ["echo", "7", "v"]);
    }

    #[test]
    fn braces_that_are_not_placeholders_stay() {
        assert_eq!(
            render(&["awk", "{print $1}", "{x}", "{", "}{"], &["f"]),
            ["awk", "{print $1}", "{x}", "{", "}{", "f"]
        );
    }

    #[test]
    fn out_of_range_source_is_an_error() {
        let args = vec![b"echo".to_vec(), b"{3}".to_vec()];
        let e = Template::parse(&args, Some(2)).unwrap_err();
        assert_eq!(
            e.0,
            "placeholder {3} names input source 3, but there are 2 input sources"
        );
        assert!(Template::parse(&[b"{0}".to_vec()], Some(1)).is_err());
        assert!(Template::parse(&[b"{0}".to_vec()], None).is_err());
        assert!(Template::parse(&[b"{9}".to_vec()], None).is_ok());
    }

    #[test]
    fn cmd_quoting_doubles_quotes() {
        assert_eq!(cmd_quote(b"plain"), b"plain");
        assert_eq!(cmd_quote(b"two words"), br#""two words""#);
        assert_eq!(cmd_quote(br#"say "hi" & exit"#), br#""say ""hi"" & exit""#);
    }

    #[cfg(unix)]
    #[test]
    fn shell_rendering_quotes_values() {
        let args = vec![
            b"echo".to_vec(),
            b"{}".to_vec(),
            b"|".to_vec(),
            b"wc".to_vec(),
        ];
        let t = Template::parse(&args, Some(1)).unwrap();
        let values = vec![b"it's $HOME".to_vec()];
        let s = t.render_shell(&Fill {
            values: &values,
            seq: 1,
            slot: 1,
        });
        assert_eq!(
            String::from_utf8(s).unwrap(),
            r#"echo 'it'\''s $HOME' | wc"#
        );
    }
}
