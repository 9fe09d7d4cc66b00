//! Command templates: GNU parallel's replacement strings, found in the command line.
//!
//! As in GNU parallel, the command's words are joined with spaces and the joined line is
//! searched for replacement strings: `{}` `{.}` `{/}` `{//}` `{/.}` `{#}` `{%}` (each renamable
//! with -I, --er, --bnr, --dnr, --bner, --seqreplace, --slotreplace), their positional forms
//! `{N}` `{N.}` … and `{-N}` (counted from the end), and with `--plus` `{+/}` `{+.}` `{..}`
//! `{##}` `{:-text}` `{#re}` `{/re/text}` and the rest of GNU's set. Any other brace text
//! (`awk '{print $1}'`) is left as it is. What a job's values turn the template into is a
//! line of [`crate::compose::Seg`]s: shell code with each value kept apart, to be quoted.

use crate::compose::Seg;
use regex::bytes::Regex;
use std::fmt;

/// What a replacement string does to each value it stands for.
#[derive(Debug, Clone)]
enum Transform {
    Whole,
    /// `{.}`, `{..}`, `{...}`: remove that many extensions.
    NoExtension(usize),
    /// `{/}`, `{/.}`, `{/..}`, `{/...}`: basename, without that many extensions.
    Basename(usize),
    /// `{//}`, `{+/}`: the directory.
    Dirname,
    /// `{+.}`, `{+..}`, `{+...}`: the extensions `{.}` (`{..}`, `{...}`) removes.
    Extensions(usize),
    /// `{:-text}`: the value, or `text` when it is empty.
    Default(Vec<u8>),
    /// `{:start}`, `{:start:len}` (characters of a UTF-8 value, bytes otherwise).
    Substring(usize, Option<usize>),
    /// `{#re}` `{##re}`: remove a matching prefix; `{%re}` `{%%re}`: a matching suffix.
    StripPrefix(Regex),
    StripSuffix(Regex),
    /// `{/re/text}` (first match), `{//re/text}` (every match).
    Replace(Regex, Vec<u8>, bool),
    /// `{^text}` `{^^text}` `{,text}` `{,,text}`: change the case of `text` at the start / anywhere.
    Case {
        upper: bool,
        all: bool,
        text: Vec<u8>,
    },
}

/// Which of a job's values a replacement string stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pos {
    /// Every value of the job.
    All,
    /// The N-th value from 1, or from the end when negative.
    Nth(i64),
}

#[derive(Debug, Clone)]
enum Piece {
    Literal(Vec<u8>),
    Value(Pos, Transform),
    /// `{#}`; `{0#}` zero-padded to the width of the total.
    Seq {
        padded: bool,
    },
    /// `{%}`; `{0%}` zero-padded to the width of the number of slots.
    Slot {
        padded: bool,
    },
    /// `{##}`: the number of jobs.
    Total,
    /// `{= perl =}` (and `--rpl`'s strings): the value the expression makes of each value
    /// (or of the N-th), as the run's [`crate::perl::Perl`] evaluated it.
    Perl(Pos, usize),
}

/// A job-wide condition that skips the job (`--plus`'s `{choose_k}` and `{uniq}`), checked
/// here rather than in Perl.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Veto {
    /// `{choose_k}`: unless the values are in strictly increasing order.
    NotIncreasing,
    /// `{uniq}`: unless the values are all different.
    Repeated,
}

/// `--rpl 'TAG perl'`: a replacement string of the user's, standing for a Perl expression.
/// A `(…)` group in the tag makes it dynamic: what the group matches is `$$1` in the code.
#[derive(Debug, Clone)]
pub struct Rpl {
    tag_len: usize,
    whole: Regex,
    /// The positional form `{N…}`, for tags that start with `{`.
    positional: Option<Regex>,
    code: Vec<u8>,
}

impl Rpl {
    /// Parses `--rpl`'s value: the tag, whitespace, the Perl code.
    pub fn parse(definition: &str) -> Result<Rpl, String> {
        let (tag, code) = match definition.find(char::is_whitespace) {
            Some(i) => (&definition[..i], &definition[i + 1..]),
            None => (definition, ""),
        };
        if tag.is_empty() {
            return Err(format!(
                "--rpl '{definition}': the replacement string is empty"
            ));
        }
        // GNU's split of the tag: text before the first `(`, a group up to the last `)`, text.
        let (prefix, group, postfix) = match (tag.find('('), tag.rfind(')')) {
            (Some(open), Some(close)) if close > open => {
                (&tag[..open], &tag[open..=close], &tag[close + 1..])
            }
            _ => (tag, "", ""),
        };
        let body = |prefix: &str| {
            format!(
                "{}(?x:{group}){}",
                regex::escape(prefix),
                regex::escape(postfix)
            )
        };
        let build = |pattern: String| {
            Regex::new(&pattern)
                .map_err(|e| format!("--rpl '{tag}': herd cannot use this pattern: {e}"))
        };
        let whole = build(format!("^(?s:{})", body(prefix)))?;
        let positional = match prefix.strip_prefix('{') {
            Some(rest) => Some(build(format!(r"^(?s:\{{(-?\d+)\s*{})", body(rest)))?),
            None => None,
        };
        Ok(Rpl {
            tag_len: tag.len(),
            whole,
            positional,
            code: code.as_bytes().to_vec(),
        })
    }

    pub fn tag_len(&self) -> usize {
        self.tag_len
    }

    /// The expression this string stands for at the start of `text`, and its length there:
    /// `$$N` becomes a variable set to what the N-th group matched (GNU's way).
    fn at(&self, text: &[u8]) -> Option<(Vec<u8>, usize)> {
        let (caps, first_group, position) = if let Some(c) = self.whole.captures(text) {
            (c, 1, None)
        } else {
            let c = self.positional.as_ref()?.captures(text)?;
            let position = c.get(1).map(|m| m.as_bytes().to_vec());
            (c, 2, position)
        };
        let mut expr = position.unwrap_or_default();
        let mut n = 0;
        for group in caps.iter().skip(first_group) {
            let Some(g) = group else { break };
            n += 1;
            expr.extend_from_slice(format!("$_pAr_gRp{n} = \"").as_bytes());
            for &b in g.as_bytes() {
                if b"\\\"$@".contains(&b) {
                    expr.push(b'\\');
                }
                expr.push(b);
            }
            expr.extend_from_slice(b"\";");
        }
        let dollars = Regex::new(r"\$\$(\d+)").expect("regex");
        expr.extend_from_slice(&dollars.replace_all(&self.code, &b"$$_pAr_gRp${1}"[..]));
        Some((expr, caps.get(0).expect("match").len()))
    }
}

/// Every Perl expression the run's templates use, numbered for the helper.
#[derive(Debug, Default)]
pub struct Exprs(pub Vec<Vec<u8>>);

impl Exprs {
    fn number(&mut self, expr: Vec<u8>) -> usize {
        match self.0.iter().position(|e| *e == expr) {
            Some(i) => i,
            None => {
                self.0.push(expr);
                self.0.len() - 1
            }
        }
    }
}

/// What a job's Perl expressions gave: for an expression and the value it was given, the
/// result and whether `uq()` asked for it unquoted.
#[derive(Debug, Default)]
pub struct PerlValues(pub Vec<(usize, Vec<u8>, Vec<u8>, bool)>);

impl PerlValues {
    fn get(&self, expr: usize, value: &[u8]) -> Option<(&[u8], bool)> {
        self.0
            .iter()
            .find(|(e, v, _, _)| *e == expr && v == value)
            .map(|(_, _, out, uq)| (&out[..], *uq))
    }
}

/// The names of the basic replacement strings (GNU's defaults, or -I, --er, … ).
#[derive(Debug, Clone)]
pub struct Names {
    pub whole: Vec<u8>,
    pub no_extension: Vec<u8>,
    pub basename: Vec<u8>,
    pub dirname: Vec<u8>,
    pub basename_no_extension: Vec<u8>,
    pub seq: Vec<u8>,
    pub slot: Vec<u8>,
    /// `--plus`: GNU's further replacement strings.
    pub plus: bool,
    /// `--parens`: what encloses a Perl expression (`{=` and `=}`).
    pub parens: (Vec<u8>, Vec<u8>),
    /// `--rpl`: the user's replacement strings, longest tag first.
    pub rpl: Vec<Rpl>,
}

impl Default for Names {
    fn default() -> Self {
        Names {
            whole: b"{}".to_vec(),
            no_extension: b"{.}".to_vec(),
            basename: b"{/}".to_vec(),
            dirname: b"{//}".to_vec(),
            basename_no_extension: b"{/.}".to_vec(),
            seq: b"{#}".to_vec(),
            slot: b"{%}".to_vec(),
            plus: false,
            parens: (b"{=".to_vec(), b"=}".to_vec()),
            rpl: Vec::new(),
        }
    }
}

/// A bad replacement string, caught before any job starts.
#[derive(Debug)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The transform of a positional modifier (`{3.}` → `.`), as GNU spells them.
fn modifier(m: &[u8], plus: bool) -> Option<Transform> {
    Some(match m {
        b"" => Transform::Whole,
        b"." => Transform::NoExtension(1),
        b"/" => Transform::Basename(0),
        b"//" => Transform::Dirname,
        b"/." => Transform::Basename(1),
        _ if !plus => return None,
        b".." => Transform::NoExtension(2),
        b"..." => Transform::NoExtension(3),
        b"/.." => Transform::Basename(2),
        b"/..." => Transform::Basename(3),
        b"+/" => Transform::Dirname,
        b"+." => Transform::Extensions(1),
        b"+.." => Transform::Extensions(2),
        b"+..." => Transform::Extensions(3),
        _ => return dynamic(m),
    })
}

fn regex(pattern: &[u8]) -> Option<Regex> {
    Regex::new(std::str::from_utf8(pattern).ok()?).ok()
}

/// `--plus`'s dynamic strings, inspired by bash's parameter expansion.
fn dynamic(m: &[u8]) -> Option<Transform> {
    let text = |s: &[u8]| s.to_vec();
    if let Some(d) = m.strip_prefix(b":-") {
        return Some(Transform::Default(text(d)));
    }
    if let Some(rest) = m.strip_prefix(b":") {
        let s = std::str::from_utf8(rest).ok()?;
        let (start, len) = match s.split_once(':') {
            Some((a, b)) => (a.parse().ok()?, Some(b.parse().ok()?)),
            None => (s.parse().ok()?, None),
        };
        return Some(Transform::Substring(start, len));
    }
    if let Some(re) = m.strip_prefix(b"##") {
        return Some(Transform::StripPrefix(regex(
            &[b"^(?s:", re, b")"].concat(),
        )?));
    }
    if let Some(re) = m.strip_prefix(b"#") {
        return Some(Transform::StripPrefix(regex(
            &[b"^(?sU:", re, b")"].concat(),
        )?));
    }
    if let Some(re) = m.strip_prefix(b"%%") {
        return Some(Transform::StripSuffix(regex(
            &[b"(?s:", re, b")$"].concat(),
        )?));
    }
    if let Some(re) = m.strip_prefix(b"%") {
        // Non-greedy from the end: the shortest suffix; found by trying the latest start first.
        return Some(Transform::StripSuffix(regex(
            &[b"(?sU:", re, b")$"].concat(),
        )?));
    }
    for (prefix, all) in [(&b"//"[..], true), (&b"/"[..], false)] {
        if let Some(rest) = m.strip_prefix(prefix) {
            let slash = rest.iter().position(|&b| b == b'/')?;
            let re = regex(&rest[..slash])?;
            return Some(Transform::Replace(re, text(&rest[slash + 1..]), all));
        }
    }
    for (prefix, upper, all) in [
        (&b"^^"[..], true, true),
        (&b"^"[..], true, false),
        (&b",,"[..], false, true),
        (&b","[..], false, false),
    ] {
        if let Some(t) = m.strip_prefix(prefix) {
            return Some(Transform::Case {
                upper,
                all,
                text: text(t),
            });
        }
    }
    None
}

/// The last path component's extension(s) removed (`dir/a.tar.gz` → `dir/a.tar`); a leading
/// dot is not an extension (`.bashrc` stays).
fn no_extension(v: &[u8], n: usize) -> &[u8] {
    let start = v.iter().rposition(|&b| b == b'/').map_or(0, |p| p + 1);
    let mut end = v.len();
    for _ in 0..n {
        match v[start..end].iter().rposition(|&b| b == b'.') {
            Some(dot) if dot > 0 => end = start + dot,
            _ => break,
        }
    }
    &v[..end]
}

fn basename(v: &[u8]) -> &[u8] {
    match v.iter().rposition(|&b| b == b'/') {
        Some(p) => &v[p + 1..],
        None => v,
    }
}

fn dirname(v: &[u8]) -> &[u8] {
    match v.iter().rposition(|&b| b == b'/') {
        Some(0) => b"/",
        Some(p) => &v[..p],
        None => b".",
    }
}

fn apply(t: &Transform, v: &[u8]) -> Vec<u8> {
    match t {
        Transform::Whole => v.to_vec(),
        Transform::NoExtension(n) => no_extension(v, *n).to_vec(),
        Transform::Basename(n) => no_extension(basename(v), *n).to_vec(),
        Transform::Dirname => dirname(v).to_vec(),
        Transform::Extensions(n) => {
            let kept = no_extension(v, *n).len();
            v.get(kept + 1..).unwrap_or_default().to_vec()
        }
        Transform::Default(d) => {
            if v.is_empty() {
                d.clone()
            } else {
                v.to_vec()
            }
        }
        Transform::Substring(start, len) => match std::str::from_utf8(v) {
            Ok(s) => {
                let chars = s.chars().skip(*start);
                match len {
                    Some(l) => chars.take(*l).collect::<String>().into_bytes(),
                    None => chars.collect::<String>().into_bytes(),
                }
            }
            Err(_) => {
                let tail = v.get(*start..).unwrap_or_default();
                tail[..len.map_or(tail.len(), |l| l.min(tail.len()))].to_vec()
            }
        },
        Transform::StripPrefix(re) => match re.find(v) {
            Some(m) => v[m.end()..].to_vec(),
            None => v.to_vec(),
        },
        Transform::StripSuffix(re) => {
            // The shortest (or, greedy, longest) matching suffix: try each start from the end.
            let greedy = !re.as_str().starts_with("(?sU");
            let starts: Box<dyn Iterator<Item = usize>> = if greedy {
                Box::new(0..=v.len())
            } else {
                Box::new((0..=v.len()).rev())
            };
            for start in starts {
                if re.find(&v[start..]).is_some_and(|m| m.start() == 0) {
                    return v[..start].to_vec();
                }
            }
            v.to_vec()
        }
        Transform::Replace(re, with, all) => {
            let with = regex::bytes::NoExpand(with);
            if *all {
                re.replace_all(v, with).into_owned()
            } else {
                re.replace(v, with).into_owned()
            }
        }
        Transform::Case { upper, all, text } => {
            let conv = |s: &[u8]| -> Vec<u8> {
                let s = String::from_utf8_lossy(s);
                if *upper {
                    s.to_uppercase().into_bytes()
                } else {
                    s.to_lowercase().into_bytes()
                }
            };
            if text.is_empty() {
                // `{^}` with nothing: the first character; `{^^}` all.
                if *all {
                    return conv(v);
                }
                let first = std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.chars().next())
                    .map_or(v.len().min(1), char::len_utf8);
                return [conv(&v[..first]), v[first..].to_vec()].concat();
            }
            if *all {
                let mut out = Vec::new();
                let mut i = 0;
                while i < v.len() {
                    if v[i..].starts_with(text) {
                        out.extend(conv(text));
                        i += text.len();
                    } else {
                        out.push(v[i]);
                        i += 1;
                    }
                }
                out
            } else if v.starts_with(text) {
                [conv(text), v[text.len()..].to_vec()].concat()
            } else {
                v.to_vec()
            }
        }
    }
}

/// A command line with replacement strings.
#[derive(Debug, Clone)]
pub struct Template {
    pieces: Vec<Piece>,
    /// Whether any replacement string appears (else the values are appended, as `{}`).
    has_replacement: bool,
    /// The largest positional number used (`{3}` → 3), to check against the sources.
    max_position: usize,
    /// `{choose_k}`, `{uniq}`: when the job is skipped.
    vetoes: Vec<Veto>,
}

/// What fills one job's replacement strings.
pub struct Fill<'a> {
    /// The job's values, in order: one per source (or column), for each of its arguments.
    pub values: &'a [Vec<u8>],
    pub seq: u64,
    pub slot: usize,
    /// The number of jobs, where known (`{##}`, `{0#}`).
    pub total: Option<u64>,
    /// The number of job slots (`{0%}`).
    pub slots: usize,
    /// What the job's Perl expressions gave.
    pub perl: Option<&'a PerlValues>,
}

/// `--header`: the columns' names in `text` become their numbers, as GNU parallel rewrites
/// them: `{name}` (and `{name/}`, `{name//}`, `{name.}`, `{name/.}`) becomes `{N}`, and a
/// Perl expression `{=name … =}` becomes `{=N … =}`.
pub fn name_columns(text: &[u8], columns: &[Vec<u8>], names: &Names) -> Vec<u8> {
    let mut text = text.to_vec();
    let left = &names.parens.0;
    for (i, column) in columns.iter().enumerate() {
        let id = (i + 1).to_string().into_bytes();
        for modifier in [&b""[..], b"/", b"//", b".", b"/."] {
            let from = [&b"{"[..], column, modifier, b"}"].concat();
            let to = [&b"{"[..], &id, modifier, b"}"].concat();
            text = replace_all(&text, &from, &to);
        }
        if !left.is_empty() {
            let from = [&left[..], column].concat();
            let to = [&left[..], &id].concat();
            text = replace_all(&text, &from, &to);
        }
    }
    text
}

fn replace_all(text: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if !from.is_empty() && text[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// A Perl expression at the start of `text`: `{= … =}` (or `--parens`'), or one of the
/// user's `--rpl` strings. Returns the expression and how long its text is.
fn perl_at(text: &[u8], names: &Names) -> Option<(Vec<u8>, usize)> {
    let (left, right) = (&names.parens.0, &names.parens.1);
    if !left.is_empty() && text.starts_with(left) {
        // The shortest `{= … =}` with no other `{=` inside, as GNU matches it.
        let body = &text[left.len()..];
        let mut j = 0;
        while j < body.len() {
            if body[j..].starts_with(right) {
                return Some((body[..j].to_vec(), left.len() + j + right.len()));
            }
            if body[j..].starts_with(left) {
                break;
            }
            j += 1;
        }
    }
    names.rpl.iter().find_map(|r| r.at(text))
}

/// GNU's positional Perl expression: `{=2 … =}` is evaluated on the second value. The number
/// must follow `{=` at once; spaces after it go.
fn split_position(expr: &[u8]) -> (Pos, &[u8]) {
    let sign = usize::from(expr.first() == Some(&b'-'));
    let digits = expr[sign..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let n: i64 = std::str::from_utf8(&expr[..sign + digits])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if digits == 0 || n == 0 {
        return (Pos::All, expr);
    }
    let rest = &expr[sign + digits..];
    let spaces = rest.iter().take_while(|&&b| b == b' ').count();
    (Pos::Nth(n), &rest[spaces..])
}

fn is_seq(inner: &[u8]) -> bool {
    inner == b"#"
}

impl Template {
    /// Parses the command line `line` (the command's words joined by spaces). `context`
    /// (`-X`) is handled when composing: each word that holds `{}` is repeated per value.
    pub fn parse(line: &[u8], names: &Names, exprs: &mut Exprs) -> Result<Template, TemplateError> {
        let fixed: [(&[u8], Piece); 7] = [
            (&names.whole, Piece::Value(Pos::All, Transform::Whole)),
            (
                &names.no_extension,
                Piece::Value(Pos::All, Transform::NoExtension(1)),
            ),
            (
                &names.basename,
                Piece::Value(Pos::All, Transform::Basename(0)),
            ),
            (&names.dirname, Piece::Value(Pos::All, Transform::Dirname)),
            (
                &names.basename_no_extension,
                Piece::Value(Pos::All, Transform::Basename(1)),
            ),
            (&names.seq, Piece::Seq { padded: false }),
            (&names.slot, Piece::Slot { padded: false }),
        ];
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let mut has_replacement = false;
        let mut max_position = 0;
        let mut vetoes = Vec::new();
        let mut i = 0;
        'scan: while i < line.len() {
            // The configured names first, longest first (so `{//}` wins over `{/}`).
            let mut best: Option<(usize, &Piece)> = None;
            for (name, piece) in &fixed {
                if !name.is_empty()
                    && line[i..].starts_with(name)
                    && best.is_none_or(|(len, _)| name.len() > len)
                {
                    best = Some((name.len(), piece));
                }
            }
            if let Some((len, piece)) = best {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                pieces.push(piece.clone());
                has_replacement = true;
                i += len;
                continue;
            }
            if let Some((expr, len)) = perl_at(&line[i..], names) {
                let (pos, expr) = split_position(&expr);
                if let Pos::Nth(n) = pos {
                    max_position = max_position.max(n.unsigned_abs() as usize);
                }
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                pieces.push(Piece::Perl(pos, exprs.number(expr.to_vec())));
                has_replacement = true;
                i += len;
                continue;
            }
            if line[i] == b'{' {
                if names.plus
                    && (line[i..].starts_with(b"{choose_k}") || line[i..].starts_with(b"{uniq}"))
                {
                    let choose = line[i..].starts_with(b"{choose_k}");
                    vetoes.push(if choose {
                        Veto::NotIncreasing
                    } else {
                        Veto::Repeated
                    });
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    pieces.push(Piece::Value(Pos::All, Transform::Whole));
                    has_replacement = true;
                    i += if choose { 10 } else { 6 };
                    continue;
                }
                if let Some(len) = line[i + 1..].iter().position(|&b| b == b'}') {
                    let inner = &line[i + 1..i + 1 + len];
                    if let Some(piece) = Self::special(inner, names.plus) {
                        if let Piece::Value(Pos::Nth(n), _) = &piece {
                            max_position = max_position.max(n.unsigned_abs() as usize);
                        }
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                        pieces.push(piece);
                        has_replacement = true;
                        i += len + 2;
                        continue 'scan;
                    }
                }
            }
            literal.push(line[i]);
            i += 1;
        }
        pieces.push(Piece::Literal(literal));
        pieces.retain(|p| !matches!(p, Piece::Literal(l) if l.is_empty()));
        Ok(Template {
            pieces,
            has_replacement,
            max_position,
            vetoes,
        })
    }

    /// A brace form that is not one of the configured names: positional `{N…}` / `{-N…}`, and
    /// with `--plus` the rest of GNU's set.
    fn special(inner: &[u8], plus: bool) -> Option<Piece> {
        let (sign, rest) = match inner.strip_prefix(b"-") {
            Some(r) if r.first().is_some_and(u8::is_ascii_digit) => (-1, r),
            _ => (1, inner),
        };
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 {
            let n: i64 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
            let m = &rest[digits..];
            if plus && n == 0 && sign == 1 {
                if is_seq(m) {
                    return Some(Piece::Seq { padded: true });
                }
                if m == b"%" {
                    return Some(Piece::Slot { padded: true });
                }
            }
            if n == 0 {
                return None;
            }
            return Some(Piece::Value(Pos::Nth(sign * n), modifier(m, plus)?));
        }
        if !plus {
            return None;
        }
        match inner {
            b"##" => Some(Piece::Total),
            b"slot" => Some(Piece::Slot { padded: false }),
            _ => Some(Piece::Value(Pos::All, modifier(inner, true)?)),
        }
    }

    /// Whether the template holds a replacement string (if not, `{}` is appended).
    pub fn has_replacement(&self) -> bool {
        self.has_replacement
    }

    /// Whether `{##}` or a zero-padded `{0#}` needs the number of jobs.
    pub fn uses_total(&self) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Total | Piece::Seq { padded: true }))
    }

    /// The Perl evaluations a job with these values needs: an expression's number and the
    /// value it gets as `$_` (`""` when the job has no values, as in GNU parallel).
    pub fn perl_requests<'v>(&self, values: &'v [Vec<u8>], out: &mut Vec<(usize, &'v [u8])>) {
        for piece in &self.pieces {
            let Piece::Perl(pos, expr) = piece else {
                continue;
            };
            match pos {
                Pos::All if values.is_empty() => out.push((*expr, b"")),
                Pos::All => out.extend(values.iter().map(|v| (*expr, &v[..]))),
                Pos::Nth(_) => out.extend(Self::value_of(values, *pos).map(|v| (*expr, v))),
            }
        }
    }

    /// Whether `{choose_k}` or `{uniq}` skips the job with these values.
    pub fn vetoed(&self, values: &[Vec<u8>]) -> bool {
        self.vetoes.iter().any(|veto| match veto {
            Veto::NotIncreasing => values.windows(2).any(|w| w[0] >= w[1]),
            Veto::Repeated => {
                let mut seen = std::collections::HashSet::new();
                !values.iter().all(|v| seen.insert(v))
            }
        })
    }

    /// The largest source number a positional replacement string names.
    pub fn max_position(&self) -> usize {
        self.max_position
    }

    /// Appends ` {}`: GNU's rule for a command without replacement strings.
    pub fn append_all(&mut self) {
        self.pieces.push(Piece::Literal(b" ".to_vec()));
        self.pieces.push(Piece::Value(Pos::All, Transform::Whole));
    }

    fn value_of(values: &[Vec<u8>], pos: Pos) -> Option<&[u8]> {
        let n = values.len() as i64;
        let i = match pos {
            Pos::Nth(k) if k > 0 => k - 1,
            Pos::Nth(k) => n + k,
            Pos::All => return None,
        };
        (0..n).contains(&i).then(|| &values[i as usize][..])
    }

    /// The composed line for one job. Each value becomes a [`Seg::Value`], to be quoted; with
    /// `context` (`-X`), a word holding an all-values replacement string is repeated for each
    /// value; otherwise such a string becomes every value, separated by spaces.
    pub fn compose(&self, fill: &Fill<'_>, context: bool) -> Vec<Seg> {
        let mut out = Vec::new();
        if context {
            // Words: split at spaces inside literals; a word with Pos::All repeats per value.
            let mut words: Vec<Vec<Piece>> = Vec::new();
            let mut seps: Vec<Vec<u8>> = Vec::new();
            let mut owned: Vec<Piece> = Vec::new();
            for piece in &self.pieces {
                match piece {
                    Piece::Literal(l) => {
                        let mut start = 0;
                        for (j, &b) in l.iter().enumerate() {
                            if b == b' ' || b == b'\t' || b == b'\n' {
                                if j > start {
                                    owned.push(Piece::Literal(l[start..j].to_vec()));
                                }
                                words.push(std::mem::take(&mut owned));
                                seps.push(vec![b]);
                                start = j + 1;
                            }
                        }
                        if start < l.len() {
                            owned.push(Piece::Literal(l[start..].to_vec()));
                        }
                    }
                    other => owned.push(other.clone()),
                }
            }
            words.push(owned);
            for (w, word) in words.iter().enumerate() {
                if w > 0 {
                    out.push(Seg::Code(seps[w - 1].clone()));
                }
                let repeats = word
                    .iter()
                    .any(|p| matches!(p, Piece::Value(Pos::All, _) | Piece::Perl(Pos::All, _)));
                if repeats && fill.values.len() != 1 {
                    for (k, v) in fill.values.iter().enumerate() {
                        if k > 0 {
                            out.push(Seg::Code(b" ".to_vec()));
                        }
                        let one = std::slice::from_ref(v);
                        self.pieces_into(
                            word.iter(),
                            &Fill {
                                values: one,
                                ..*fill
                            },
                            fill,
                            &mut out,
                        );
                    }
                } else {
                    self.pieces_into(word.iter(), fill, fill, &mut out);
                }
            }
        } else {
            self.pieces_into(self.pieces.iter(), fill, fill, &mut out);
        }
        out
    }

    /// Renders pieces with `fill`'s values for `{}` and `whole`'s for positional strings.
    fn pieces_into<'p>(
        &self,
        pieces: impl Iterator<Item = &'p Piece>,
        fill: &Fill<'_>,
        whole: &Fill<'_>,
        out: &mut Vec<Seg>,
    ) {
        for piece in pieces {
            match piece {
                Piece::Literal(l) => out.push(Seg::Code(l.clone())),
                Piece::Seq { padded } => {
                    let width = if *padded {
                        fill.total.unwrap_or(fill.seq).to_string().len()
                    } else {
                        0
                    };
                    out.push(Seg::Code(format!("{:0width$}", fill.seq).into_bytes()));
                }
                Piece::Slot { padded } => {
                    let width = if *padded {
                        fill.slots.to_string().len()
                    } else {
                        0
                    };
                    out.push(Seg::Code(format!("{:0width$}", fill.slot).into_bytes()));
                }
                Piece::Total => out.push(Seg::Code(
                    fill.total
                        .map_or(String::new(), |t| t.to_string())
                        .into_bytes(),
                )),
                Piece::Value(Pos::All, t) => {
                    if fill.values.is_empty() {
                        out.push(Seg::Value(Vec::new()));
                    }
                    for (k, v) in fill.values.iter().enumerate() {
                        if k > 0 {
                            out.push(Seg::Code(b" ".to_vec()));
                        }
                        out.push(Seg::Value(apply(t, v)));
                    }
                }
                Piece::Value(pos, t) => {
                    let v = Self::value_of(whole.values, *pos).unwrap_or_default();
                    out.push(Seg::Value(apply(t, v)));
                }
                Piece::Perl(Pos::All, expr) => {
                    if fill.values.is_empty() {
                        out.push(Self::perl_seg(fill, *expr, b""));
                    }
                    for (k, v) in fill.values.iter().enumerate() {
                        if k > 0 {
                            out.push(Seg::Code(b" ".to_vec()));
                        }
                        out.push(Self::perl_seg(fill, *expr, v));
                    }
                }
                Piece::Perl(pos, expr) => out.push(match Self::value_of(whole.values, *pos) {
                    Some(v) => Self::perl_seg(fill, *expr, v),
                    None => Seg::Value(Vec::new()),
                }),
            }
        }
    }

    /// What expression `expr` made of `value`: quoted, unless `uq()` said not to.
    fn perl_seg(fill: &Fill<'_>, expr: usize, value: &[u8]) -> Seg {
        match fill.perl.and_then(|p| p.get(expr, value)) {
            Some((out, true)) => Seg::Code(out.to_vec()),
            Some((out, false)) => Seg::Value(out.to_vec()),
            None => Seg::Value(Vec::new()),
        }
    }

    /// `-q`: each word of the command is one argument, values put in as they are (no shell
    /// reads them). Returns the words, each to be quoted.
    pub fn compose_words(words: &[Template], fill: &Fill<'_>) -> Vec<Seg> {
        let mut out = Vec::new();
        for (w, word) in words.iter().enumerate() {
            if w > 0 {
                out.push(Seg::Code(b" ".to_vec()));
            }
            let text = crate::compose::text(&word.compose(fill, false));
            out.push(Seg::Value(text));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_with(line: &str, values: &[&str], names: &Names, context: bool) -> String {
        let mut t = Template::parse(line.as_bytes(), names, &mut Exprs::default()).unwrap();
        if !t.has_replacement() {
            t.append_all();
        }
        let values: Vec<Vec<u8>> = values.iter().map(|a| a.as_bytes().to_vec()).collect();
        let segs = t.compose(
            &Fill {
                values: &values,
                seq: 7,
                slot: 3,
                total: Some(120),
                slots: 8,
                perl: None,
            },
            context,
        );
        segs.iter()
            .map(|s| match s {
                Seg::Code(c) => String::from_utf8_lossy(c).into_owned(),
                Seg::Value(v) => format!("[{}]", String::from_utf8_lossy(v)),
            })
            .collect()
    }

    fn render(line: &str, values: &[&str]) -> String {
        render_with(line, values, &Names::default(), false)
    }

    fn plus(line: &str, values: &[&str]) -> String {
        let names = Names {
            plus: true,
            ..Names::default()
        };
        render_with(line, values, &names, false)
    }

    #[test]
    fn basic_replacement_strings() {
        assert_eq!(
            render("x{} {.} {/} {//} {/.} {#} {%}", &["dir/sub/a.tar.gz"]),
            "x[dir/sub/a.tar.gz] [dir/sub/a.tar] [a.tar.gz] [dir/sub] [a.tar] 7 3"
        );
        assert_eq!(render("{//} {.} {/.}", &["file"]), "[.] [file] [file]");
        assert_eq!(render("{.}", &[".bashrc"]), "[.bashrc]");
        assert_eq!(render("{.}", &["a.b/c"]), "[a.b/c]");
        assert_eq!(
            render("{2}-{1} {} {2/.}", &["a", "x/b.c"]),
            "[x/b.c]-[a] [a] [x/b.c] [b]"
        );
        assert_eq!(render("{-1} {-2} {3}", &["a", "b"]), "[b] [a] []");
    }

    #[test]
    fn without_a_replacement_string_the_values_are_appended() {
        assert_eq!(render("echo", &["a b", "c"]), "echo [a b] [c]");
        // {#} and {%} count as replacement strings (GNU's rule): nothing is appended.
        assert_eq!(render("echo {#}", &["v"]), "echo 7");
    }

    #[test]
    fn braces_that_are_not_replacement_strings_stay() {
        assert_eq!(
            render("awk '{print $1}' {x} { }{", &["f"]),
            "awk '{print $1}' {x} { }{ [f]"
        );
    }

    #[test]
    fn renamed_strings() {
        let names = Names {
            whole: b",,".to_vec(),
            no_extension: b"EXT".to_vec(),
            ..Names::default()
        };
        assert_eq!(
            render_with("echo ,, EXT {}", &["a.b"], &names, false),
            "echo [a.b] [a] {}"
        );
    }

    #[test]
    fn context_repeats_the_word() {
        let names = Names::default();
        assert_eq!(
            render_with("echo pre{}post x", &["a", "b"], &names, true),
            "echo pre[a]post pre[b]post x"
        );
    }

    #[test]
    fn plus_strings() {
        assert_eq!(
            plus("{+/} {+.} {..} {/..} {+..} {##} {0#} {0%}", &["d/a.b.c"]),
            "[d] [c] [d/a] [a] [b.c] 120 007 3"
        );
        assert_eq!(
            plus(
                "{:-x} {:2} {:1:2} {#a} {%.c} {/b/X} {//[ab]/X} {^a} {^^b} {,,A}",
                &["abc.c"]
            ),
            "[abc.c] [c.c] [bc] [bc.c] [abc] [aXc.c] [XXc.c] [Abc.c] [aBc.c] [abc.c]"
        );
        assert_eq!(plus("{:-x} {1:-y}", &[""]), "[x] [y]");
        assert_eq!(
            plus("{##a} {##a*} {%%.*}", &["aaab.c.d"]),
            "[aab.c.d] [b.c.d] []"
        );
        // GNU: the shortest suffix `.*` matches is the empty one.
        assert_eq!(plus("{%.*}", &["aaab.c.d"]), "[aaab.c.d]");
        // Without --plus these are literal.
        assert_eq!(render("{+/} {..}", &["x"]), "{+/} {..} [x]");
    }

    fn perl_template(line: &str, names: &Names) -> (Template, Vec<String>) {
        let mut exprs = Exprs::default();
        let t = Template::parse(line.as_bytes(), names, &mut exprs).unwrap();
        let exprs = exprs
            .0
            .iter()
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .collect();
        (t, exprs)
    }

    #[test]
    fn perl_expressions_are_found_with_their_position() {
        let names = Names::default();
        let (t, exprs) = perl_template("echo {= s/a/b/ =}x {=2 $_++ =} {= s/a/b/ =}", &names);
        // The same expression is compiled once; a leading number is the position.
        assert_eq!(exprs, [" s/a/b/ ", "$_++ "]);
        let values = vec![b"a".to_vec(), b"1".to_vec()];
        let mut requests = Vec::new();
        t.perl_requests(&values, &mut requests);
        let want: Vec<(usize, &[u8])> = vec![(0, b"a"), (0, b"1"), (1, b"1"), (0, b"a"), (0, b"1")];
        assert_eq!(requests, want);
        let perl = PerlValues(vec![
            (0, b"a".to_vec(), b"b".to_vec(), false),
            (0, b"1".to_vec(), b"x y".to_vec(), true),
            (1, b"1".to_vec(), b"2".to_vec(), false),
        ]);
        let fill = Fill {
            values: &values,
            seq: 1,
            slot: 1,
            total: None,
            slots: 1,
            perl: Some(&perl),
        };
        // uq() results are shell code; the others are values, to be quoted.
        assert_eq!(
            t.compose(&fill, false),
            [
                Seg::Code(b"echo ".to_vec()),
                Seg::Value(b"b".to_vec()),
                Seg::Code(b" ".to_vec()),
                Seg::Code(b"x y".to_vec()),
                Seg::Code(b"x ".to_vec()),
                Seg::Value(b"2".to_vec()),
                Seg::Code(b" ".to_vec()),
                Seg::Value(b"b".to_vec()),
                Seg::Code(b" ".to_vec()),
                Seg::Code(b"x y".to_vec()),
            ]
        );
        // The shortest {= … =} with no {= inside; an unclosed one is text.
        let (_, exprs) = perl_template("{= a {= b =} =} {= c", &names);
        assert_eq!(exprs, [" b "]);
    }

    #[test]
    fn parens_and_rpl_define_perl_strings() {
        let names = Names {
            parens: (b",,".to_vec(), b",,".to_vec()),
            rpl: vec![
                Rpl::parse("{%(.+?)} s/$$1$//;").unwrap(),
                Rpl::parse(".. s:\\.[^.]+$::;").unwrap(),
            ],
            ..Names::default()
        };
        let (t, exprs) = perl_template("echo ,, uc ,, {%.gz} {2%\"$@} ..", &names);
        assert_eq!(
            exprs,
            [
                " uc ",
                "$_pAr_gRp1 = \".gz\";s/$_pAr_gRp1$//;",
                // {2%…}: the positional form, on the second value.
                "$_pAr_gRp1 = \"\\\"\\$\\@\";s/$_pAr_gRp1$//;",
                "s:\\.[^.]+$::;",
            ]
        );
        assert_eq!(t.max_position(), 2);
        assert!(
            Rpl::parse("{x(} y").is_ok(),
            "an unclosed group is plain text"
        );
    }

    #[test]
    fn choose_k_and_uniq_skip_jobs() {
        let names = Names {
            plus: true,
            ..Names::default()
        };
        let v = |s: &[&str]| s.iter().map(|x| x.as_bytes().to_vec()).collect::<Vec<_>>();
        let (k, _) = perl_template("echo {choose_k}", &names);
        assert!(!k.vetoed(&v(&["A", "B", "D"])));
        assert!(k.vetoed(&v(&["A", "C", "B"])));
        assert!(k.vetoed(&v(&["A", "A"])));
        let (u, _) = perl_template("echo {uniq}", &names);
        assert!(!u.vetoed(&v(&["B", "A"])));
        assert!(u.vetoed(&v(&["B", "A", "B"])));
        assert_eq!(plus("echo {choose_k}", &["A", "B"]), "echo [A] [B]");
        // Without --plus they are text.
        assert_eq!(render("{uniq}", &["a"]), "{uniq} [a]");
    }
}
