//! GNU parallel's option syntax, so its users' command lines run unchanged.
//!
//! GNU parallel reads options with Perl's Getopt::Long set to `bundling` and `require_order`:
//! short options bundle (`-kj4` is `-k -j 4`), a short option's value may be attached or the
//! next word, long options are case-insensitive, may be abbreviated to any unique prefix and take
//! `--name=value` or `--name value`, and the first word that is not an option ends the options.
//! It also knows many aliases (`--dryrun`, `--jl`, `--xapply`, …). This module reads a command
//! line that way and rewrites it into the canonical `--name=value` form that clap parses, so
//! clap stays the one definition of herd's own options (and of `--help`).
//!
//! Every option in GNU parallel 20221122's option table is known here: mapped to herd's option,
//! accepted silently where it changes nothing for herd (`--will-cite`), accepted with a one-line
//! note where herd does something else, or refused with what to use instead.

use std::ffi::{OsStr, OsString};

/// How an option takes a value (Getopt::Long's `=s`, `:s`, or none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    Nothing,
    Value,
    /// An optional value: attached, or the next word unless it starts with `-`.
    Optional,
}

/// What herd does with a GNU parallel option.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// herd's own option of this long name.
    To(&'static str),
    /// Changes nothing for herd: accepted silently.
    Quiet,
    /// Accepted; herd says once what it does instead.
    Note(&'static str),
    /// Not available: the run stops before any job with this reason.
    Refuse(&'static str),
}

use Action::{Note, Quiet, Refuse, To};

const NOT_YET_SSH: &str = "is not available yet (herd runs jobs on other hosts with -S, but \
     host groups and rsync options are still to come)";

/// GNU parallel's options (20221122): names as Getopt::Long spells them, then what herd does.
/// `=` takes a value, `:` an optional value. herd's own options are found in clap's definition.
const GNU: &[(&str, Action)] = &[
    ("debug|D=s", Note("herd has no debug output; try --events - to follow the run")),
    ("xargs", To("xargs")),
    ("m", To("multiple")),
    ("X", To("context-replace")),
    ("v", To("verbose")),
    ("sql=s", Refuse("is not supported: herd has no SQL queue")),
    ("sql-master|sqlmaster=s", Refuse("is not supported: herd has no SQL queue")),
    ("sql-worker|sqlworker=s", Refuse("is not supported: herd has no SQL queue")),
    ("sql-and-worker|sqlandworker=s", Refuse("is not supported: herd has no SQL queue")),
    ("joblog|jl=s", To("joblog")),
    ("results|result|res=s", To("results")),
    ("resume", To("resume")),
    ("resume-failed|resumefailed", To("resume-failed")),
    ("retry-failed|retryfailed", To("retry-failed")),
    ("silent", Quiet),
    ("keep-order|keeporder|k", To("keep-order")),
    ("no-keep-order|nokeeporder|nok|no-k", To("no-keep-order")),
    ("group", To("group")),
    ("g", Refuse("is retired in GNU parallel; grouping is the default")),
    ("ungroup|u", To("ungroup")),
    ("latest-line|latestline|ll", Note("herd prints whole lines as they come (--line-buffer) instead of only each job's latest line")),
    ("line-buffer|line-buffered|linebuffer|linebuffered|lb", To("line-buffer")),
    ("tmux", Refuse("is not supported: use --line-buffer --tag to watch jobs live")),
    ("tmux-pane|tmuxpane", Refuse("is not supported: use --line-buffer --tag to watch jobs live")),
    ("null|0", To("null")),
    ("quote|q", To("quote")),
    ("parens=s", To("parens")),
    ("rpl=s", To("rpl")),
    ("plus", To("plus")),
    ("I=s", To("replace-str")),
    ("extensionreplace|er=s", To("extensionreplace")),
    ("U=s", Refuse("is retired in GNU parallel: use --extensionreplace")),
    ("basenamereplace|bnr=s", To("basenamereplace")),
    ("dirnamereplace|dnr=s", To("dirnamereplace")),
    ("basenameextensionreplace|bner=s", To("basenameextensionreplace")),
    ("seqreplace=s", To("seqreplace")),
    ("slotreplace=s", To("slotreplace")),
    ("jobs|j=s", To("jobs")),
    ("delay=s", To("delay")),
    ("ssh-delay|sshdelay=s", Note("herd logs in to each host once, one connection at a time, so it needs no delay between logins")),
    ("load=s", To("load")),
    ("noswap", To("noswap")),
    ("max-line-length-allowed|maxlinelengthallowed", To("max-line-length-allowed")),
    ("number-of-cpus|numberofcpus", To("number-of-cpus")),
    ("number-of-sockets|numberofsockets", To("number-of-sockets")),
    ("number-of-cores|numberofcores", To("number-of-cores")),
    ("number-of-threads|numberofthreads", To("number-of-threads")),
    ("use-sockets-instead-of-threads|usesocketsinsteadofthreads", Quiet),
    ("use-cores-instead-of-threads|usecoresinsteadofthreads", Quiet),
    ("use-cpus-instead-of-cores|usecpusinsteadofcores", Quiet),
    ("shell-quote|shellquote|shell_quote", To("shell-quote")),
    ("nice=s", To("nice")),
    ("tag", To("tag")),
    ("tag-string|tagstring=s", To("tagstring")),
    ("ctag", To("tag")),
    ("ctag-string|ctagstring=s", To("tagstring")),
    ("color|colour", Quiet),
    ("color-failed|colour-failed|colorfailed|colourfailed|color-fail|colour-fail|colorfail|colourfail|cf", Quiet),
    ("onall", To("onall")),
    ("nonall", To("nonall")),
    ("filter-hosts|filterhosts|filter-host", Note("herd always leaves out the hosts it cannot reach, and tries them again later")),
    ("sshlogin|S=s", To("sshlogin")),
    ("sshloginfile|slf=s", To("sshloginfile")),
    ("controlmaster|M", Quiet),
    ("ssh=s", To("ssh")),
    ("transfer-file|transferfile|transfer-files|transferfiles|tf=s", To("transferfile")),
    ("return=s", To("return")),
    ("trc=s", To("trc")),
    ("transfer", To("transfer")),
    ("cleanup", To("cleanup")),
    ("basefile|bf=s", To("basefile")),
    ("template|tmpl=s", Refuse("is not supported: write the file from a job instead")),
    ("B=s", Refuse("is retired in GNU parallel")),
    ("ctrl-c|ctrlc", Quiet),
    ("no-ctrl-c|no-ctrlc|noctrlc", Quiet),
    ("work-dir|workdir|wd=s", To("workdir")),
    ("W=s", Refuse("is retired in GNU parallel: use --workdir")),
    ("rsync-opts|rsyncopts=s", Refuse(NOT_YET_SSH)),
    ("tmpdir|tempdir=s", To("tmpdir")),
    ("use-compress-program|compress-program|usecompressprogram|compressprogram=s", Note("is not used: herd's temporary files are not compressed")),
    ("use-decompress-program|decompress-program|usedecompressprogram|decompressprogram=s", Note("is not used: herd's temporary files are not compressed")),
    ("compress", Note("is not used: herd's temporary files are not compressed")),
    ("open-tty|o", To("open-tty")),
    ("tty", To("tty")),
    ("T", Refuse("is retired in GNU parallel")),
    ("H=s", Refuse("is retired in GNU parallel")),
    ("dry-run|dryrun|dr", To("dry-run")),
    ("progress", To("bar")),
    ("eta", To("eta")),
    ("bar", To("bar")),
    ("total-jobs|totaljobs|total=s", To("total-jobs")),
    ("shuf", To("shuf")),
    ("arg-sep|argsep=s", To("arg-sep")),
    ("arg-file-sep|argfilesep=s", To("arg-file-sep")),
    ("trim=s", To("trim")),
    ("env=s", To("env")),
    ("recordenv|record-env", To("record-env")),
    ("session", Refuse("is for env_parallel, which herd does not have")),
    ("plain", To("plain")),
    ("profile|J=s", To("profile")),
    ("tollef", Refuse("is retired in GNU parallel")),
    ("gnu", Quiet),
    ("link|xapply", To("link")),
    ("linkinputsource|xapplyinputsource=s", Refuse("is not supported: link sources with :::+ and ::::+")),
    ("bibtex|citation", Quiet),
    ("will-cite|willcite|nn|nonotice|no-notice", Quiet),
    ("halt-on-error|haltonerror|halt=s", To("halt")),
    ("limit=s", Note("is not enforced: herd starts jobs by --jobs alone")),
    ("memfree=s", To("memfree")),
    ("memsuspend=s", Note("is not enforced: herd starts jobs by --jobs alone")),
    ("retries=s", To("retries")),
    ("timeout=s", To("timeout")),
    ("term-seq|termseq=s", To("termseq")),
    ("max-procs|maxprocs|P=s", To("jobs")),
    ("delimiter|d=s", To("delimiter")),
    ("max-chars|maxchars|s=s", To("max-chars")),
    ("arg-file|argfile|a=s", To("arg-file")),
    ("no-run-if-empty|norunifempty|r", To("no-run-if-empty")),
    ("replace|i:s", To("replace")),
    ("E=s", To("eof")),
    ("eof|e:s", To("eof")),
    ("process-slot-var|processslotvar=s", To("process-slot-var")),
    ("max-args|maxargs|n=s", To("max-args")),
    ("max-replace-args|maxreplaceargs|N=s", To("max-replace-args")),
    ("col-sep|colsep|C=s", To("colsep")),
    ("csv", To("csv")),
    ("help", To("help")),
    ("h", To("short-help")),
    ("L=s", To("max-lines")),
    ("max-lines|maxlines|l:s", To("max-lines")),
    ("interactive|p", Refuse("is not supported: herd does not ask before each job (try --dry-run first)")),
    ("verbose|t", To("verbose-stderr")),
    ("version|V", To("version")),
    ("min-version|minversion=s", To("minversion")),
    ("show-limits|showlimits", Refuse("is not available in herd yet")),
    ("exit|x", Note("is implied: a command line longer than --max-chars is an error")),
    ("semaphore", Refuse("is not supported: herd is not a semaphore (sem)")),
    ("semaphore-timeout|semaphoretimeout|st=s", Refuse("is not supported: herd is not a semaphore (sem)")),
    ("semaphore-name|semaphorename|id=s", Refuse("is not supported: herd is not a semaphore (sem)")),
    ("fg", Refuse("is not supported: herd is not a semaphore (sem)")),
    ("bg", Refuse("is not supported: herd is not a semaphore (sem)")),
    ("wait", Refuse("is not supported: herd is not a semaphore (sem)")),
    ("shebang|hashbang", Refuse("must be the first argument: write #!/path/to/herd --shebang … as a script's first line")),
    ("shebang-wrap|shebangwrap", Refuse("must be the first argument: write #!/path/to/herd --shebang-wrap PROGRAM as a script's first line")),
    ("Y", Refuse("is retired in GNU parallel")),
    ("skip-first-line|skipfirstline", To("skip-first-line")),
    ("bug", Quiet),
    ("pipe|spreadstdin", To("pipe")),
    ("round-robin|roundrobin|round", To("round-robin")),
    ("recstart=s", To("recstart")),
    ("recend=s", To("recend")),
    ("regexp|regex", To("regexp")),
    ("remove-rec-sep|removerecsep|rrs", To("remove-rec-sep")),
    ("output-as-files|outputasfiles|files", To("files")),
    ("block-size|blocksize|block=s", To("block")),
    ("block-timeout|blocktimeout|bt=s", To("block-timeout")),
    ("header=s", To("header")),
    ("cat", To("cat")),
    ("fifo", To("fifo")),
    ("pipe-part|pipepart", To("pipe-part")),
    ("tee", To("tee")),
    ("shard=s", To("shard")),
    ("bin=s", To("bin")),
    ("group-by|groupby=s", To("group-by")),
    ("hgrp|hostgrp|hostgroup|hostgroups", Refuse(NOT_YET_SSH)),
    ("embed", Refuse("is not supported: call herd from your script")),
    ("filter=s", To("filter")),
    ("shell-completion|shellcompletion=s", Note("herd writes completion scripts with --generate complete-bash (zsh, fish, …)")),
];

/// One known option: its names, how it takes a value, and what herd does with it.
#[derive(Debug, Clone)]
struct Known {
    longs: Vec<String>,
    shorts: Vec<char>,
    takes: Takes,
    action: Action,
}

fn parse_spec(spec: &str, action: Action) -> Known {
    let (names, takes) = match spec.find(['=', ':']) {
        Some(i) if spec.as_bytes()[i] == b'=' => (&spec[..i], Takes::Value),
        Some(i) => (&spec[..i], Takes::Optional),
        None => (spec, Takes::Nothing),
    };
    let mut longs = Vec::new();
    let mut shorts = Vec::new();
    for name in names.split('|') {
        let mut chars = name.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => shorts.push(c),
            _ => longs.push(name.to_owned()),
        }
    }
    Known {
        longs,
        shorts,
        takes,
        action,
    }
}

/// Every option herd knows: GNU parallel's table first (its spellings win), then herd's own
/// options from clap's definition.
fn table() -> Vec<Known> {
    use clap::CommandFactory;
    let mut known: Vec<Known> = GNU.iter().map(|(s, a)| parse_spec(s, *a)).collect();
    let cmd = crate::cli::Cli::command();
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let mut longs = vec![long.to_owned()];
        longs.extend(
            arg.get_all_aliases()
                .into_iter()
                .flatten()
                .map(str::to_owned),
        );
        let mut shorts: Vec<char> = arg.get_short().into_iter().collect();
        // A name GNU already defines keeps GNU's meaning.
        longs.retain(|l| !known.iter().any(|k| k.longs.contains(l)));
        shorts.retain(|s| !known.iter().any(|k| k.shorts.contains(s)));
        if longs.is_empty() && shorts.is_empty() {
            continue;
        }
        let takes = if arg.get_action().takes_values() {
            Takes::Value
        } else {
            Takes::Nothing
        };
        let name: &'static str = Box::leak(long.to_owned().into_boxed_str());
        known.push(Known {
            longs,
            shorts,
            takes,
            action: To(name),
        });
    }
    known
}

/// The command line in clap's canonical form, and what to tell the user.
#[derive(Debug, Default)]
pub struct Normalized {
    /// The program name, `--name[=value]` for each option, `--`, then the command and sources.
    pub args: Vec<OsString>,
    /// One line each for options accepted with a note.
    pub notes: Vec<String>,
}

/// A command-line mistake found while reading the options.
#[derive(Debug)]
pub struct ArgError(pub String);

fn concat(a: &str, b: &OsStr) -> OsString {
    let mut s = OsString::from(a);
    s.push(b);
    s
}

#[cfg(unix)]
fn os_bytes(s: &OsStr) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    s.as_bytes()
}

#[cfg(not(unix))]
fn os_bytes(s: &OsStr) -> &[u8] {
    s.as_encoded_bytes()
}

#[cfg(unix)]
fn os_from(b: &[u8]) -> OsString {
    use std::os::unix::ffi::OsStrExt;
    OsStr::from_bytes(b).to_owned()
}

#[cfg(not(unix))]
fn os_from(b: &[u8]) -> OsString {
    OsString::from(String::from_utf8_lossy(b).into_owned())
}

struct Reader {
    table: Vec<Known>,
    out: Normalized,
}

impl Reader {
    /// The option whose long name is `name`, exactly or as GNU's unique abbreviation
    /// (case-insensitive, as Getopt::Long reads long options).
    fn long(&self, name: &str) -> Result<&Known, ArgError> {
        let lower = name.to_ascii_lowercase();
        if let Some(k) = self
            .table
            .iter()
            .find(|k| k.longs.iter().any(|l| l.eq_ignore_ascii_case(&lower)))
        {
            return Ok(k);
        }
        let matches: Vec<&Known> = self
            .table
            .iter()
            .filter(|k| {
                k.longs
                    .iter()
                    .any(|l| l.to_ascii_lowercase().starts_with(&lower))
            })
            .collect();
        match matches[..] {
            [one] => Ok(one),
            [] => Err(ArgError(format!(
                "unknown option '--{name}'{}",
                self.suggest(&lower)
            ))),
            _ => {
                let mut names: Vec<String> = matches
                    .iter()
                    .map(|k| format!("--{}", k.longs[0]))
                    .collect();
                names.sort();
                Err(ArgError(format!(
                    "option '--{name}' is ambiguous: it could be {}",
                    names.join(", ")
                )))
            }
        }
    }

    fn suggest(&self, name: &str) -> String {
        let best = self
            .table
            .iter()
            .flat_map(|k| k.longs.iter())
            .map(|l| (strsim::jaro_winkler(name, l), l))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        match best {
            Some((_, l)) => format!(" (did you mean '--{l}'?)"),
            None => String::new(),
        }
    }

    fn emit(
        &mut self,
        known: &Known,
        shown: &str,
        value: Option<OsString>,
    ) -> Result<(), ArgError> {
        match known.action {
            To(canon) => {
                self.out.args.push(match value {
                    Some(v) => concat(&format!("--{canon}="), &v),
                    None => OsString::from(format!("--{canon}")),
                });
                Ok(())
            }
            Quiet => Ok(()),
            Note(why) => {
                let line = format!("{shown} {why}");
                if !self.out.notes.contains(&line) {
                    self.out.notes.push(line);
                }
                Ok(())
            }
            Refuse(why) => Err(ArgError(format!("{shown} {why}"))),
        }
    }
}

/// The value of an option: the one attached to it, else for one that needs a value the next
/// word, and for an optional value the next word unless it starts with `-` (then empty).
fn value_of(
    takes: Takes,
    attached: Option<OsString>,
    args: &mut std::iter::Peekable<impl Iterator<Item = OsString>>,
    shown: &str,
) -> Result<Option<OsString>, ArgError> {
    Ok(match (takes, attached) {
        (Takes::Nothing, _) => None,
        (_, Some(v)) => Some(v),
        (Takes::Value, None) => Some(
            args.next()
                .ok_or_else(|| ArgError(format!("option {shown} needs a value")))?,
        ),
        (Takes::Optional, None) => Some(
            args.next_if(|n| !os_bytes(n).starts_with(b"-"))
                .unwrap_or_default(),
        ),
    })
}

/// Reads `args` (the program name first) as GNU parallel reads its options.
pub fn normalize(args: Vec<OsString>) -> Result<Normalized, ArgError> {
    let mut r = Reader {
        table: table(),
        out: Normalized::default(),
    };
    let mut args = args.into_iter().peekable();
    r.out.args.extend(args.next());
    while let Some(arg) = args.next() {
        let bytes = os_bytes(&arg).to_vec();
        if bytes == b"--" {
            // The end of the options: everything after it is the command.
            r.out.args.push(OsString::from("--"));
            r.out.args.extend(args);
            return Ok(r.out);
        }
        if bytes.len() < 2 || bytes[0] != b'-' {
            // The first word that is not an option starts the command.
            r.out.args.push(OsString::from("--"));
            r.out.args.push(arg);
            r.out.args.extend(args);
            return Ok(r.out);
        }
        if let Some(long) = bytes.strip_prefix(b"--") {
            let (name, attached) = match long.iter().position(|&b| b == b'=') {
                Some(i) => (&long[..i], Some(os_from(&long[i + 1..]))),
                None => (long, None),
            };
            let name = String::from_utf8_lossy(name).into_owned();
            let known = r.long(&name)?.clone();
            let shown = format!("--{}", known.longs.first().map_or(&name, |l| l));
            if known.takes == Takes::Nothing && attached.is_some() {
                return Err(ArgError(format!("option {shown} takes no value")));
            }
            let value = value_of(known.takes, attached, &mut args, &shown)?;
            r.emit(&known, &shown, value)?;
            continue;
        }
        // A bundle of short options: -kj4, -0a file.
        let mut i = 1;
        while i < bytes.len() {
            let c = bytes[i] as char;
            let known = r
                .table
                .iter()
                .find(|k| bytes[i].is_ascii() && k.shorts.contains(&c))
                .cloned()
                .ok_or_else(|| {
                    ArgError(format!(
                        "unknown option '-{}'{}",
                        String::from_utf8_lossy(&bytes[i..i + 1]),
                        if bytes.len() > 2 {
                            format!(" in '{}'", String::from_utf8_lossy(&bytes))
                        } else {
                            String::new()
                        }
                    ))
                })?;
            let shown = format!("-{c}");
            let rest = &bytes[i + 1..];
            // The rest of the bundle is the value of an option that takes one (-j4).
            let attached =
                (known.takes != Takes::Nothing && !rest.is_empty()).then(|| os_from(rest));
            let value = value_of(known.takes, attached, &mut args, &shown)?;
            let took_rest = value.is_some() && !rest.is_empty();
            r.emit(&known, &shown, value)?;
            if took_rest {
                break;
            }
            i += 1;
        }
    }
    r.out.args.push(OsString::from("--"));
    Ok(r.out)
}

/// Splits a line into words as a shell would (quotes and backslashes), for `$PARALLEL` and
/// profile files.
/// herd as a script's interpreter (`#!`). The kernel runs `herd "OPTIONS" SCRIPT ARGS…`,
/// with the rest of the `#!` line as one argument, which is split here as GNU parallel does:
///
/// - `#!/usr/bin/herd --shebang OPTIONS COMMAND`: the script's lines (after the first) are the
///   input: `herd --skip-first-line -a SCRIPT OPTIONS COMMAND`.
/// - `#!/usr/bin/herd --shebang-wrap PROGRAM OPTIONS`: the script runs once per argument given
///   to it, in parallel: `herd PROGRAM OPTIONS SCRIPT ::: ARGS` (or the arguments from stdin).
pub fn unwrap_shebang(argv: Vec<OsString>) -> Result<Vec<OsString>, ArgError> {
    let Some(first) = argv.get(1).and_then(|a| a.to_str()).map(str::to_owned) else {
        return Ok(argv);
    };
    let wrap = ["--shebang-wrap", "--shebangwrap"]
        .iter()
        .find_map(|p| first.strip_prefix(p));
    let plain = ["--shebang", "--hashbang"]
        .iter()
        .find_map(|p| first.strip_prefix(p))
        .filter(|_| wrap.is_none());
    let words = match wrap.or(plain) {
        Some(rest) if rest.is_empty() || rest.starts_with(' ') => shell_words(rest)?,
        _ => return Ok(argv),
    };
    let mut argv = argv.into_iter();
    let mut out: Vec<OsString> = argv.next().into_iter().collect();
    argv.next();
    let script = argv.next().ok_or_else(|| {
        ArgError(format!(
            "{first}: no script (herd --shebang is for a script's #! line)"
        ))
    })?;
    let args: Vec<OsString> = argv.collect();
    if wrap.is_some() {
        out.extend(words);
        out.push(script);
        if !args.is_empty() {
            out.push(":::".into());
            out.extend(args);
        }
    } else {
        out.extend(["--skip-first-line".into(), "-a".into(), script]);
        out.extend(words);
        out.extend(args);
    }
    Ok(out)
}

pub fn shell_words(line: &str) -> Result<Vec<OsString>, ArgError> {
    shlex::split(line)
        .map(|w| w.into_iter().map(OsString::from).collect())
        .ok_or_else(|| {
            ArgError(format!(
                "cannot split into words (unbalanced quote?): {line}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        let mut v = vec![OsString::from("herd")];
        v.extend(args.iter().map(OsString::from));
        normalize(v)
            .unwrap()
            .args
            .into_iter()
            .skip(1)
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    fn err(args: &[&str]) -> String {
        let mut v = vec![OsString::from("herd")];
        v.extend(args.iter().map(OsString::from));
        normalize(v).unwrap_err().0
    }

    #[test]
    fn every_option_herd_h_names_exists() {
        let known = table();
        let options = crate::cli::SUMMARY.split("Common options:").nth(1).unwrap();
        let options = options.split("Examples:").next().unwrap();
        let mut checked = 0;
        for word in options
            .split([' ', ',', '\n'])
            .filter(|w| w.starts_with('-'))
        {
            let found = match word.strip_prefix("--") {
                Some(long) => known.iter().any(|k| k.longs.iter().any(|l| l == long)),
                None => {
                    let c = word[1..].chars().next().unwrap();
                    known.iter().any(|k| k.shorts.contains(&c))
                }
            };
            assert!(found, "herd -h names {word}, which herd does not know");
            checked += 1;
        }
        assert!(checked > 20, "{checked}");
    }

    #[test]
    fn bundles_attached_values_and_abbreviations() {
        assert_eq!(
            norm(&["-kj4", "--dry", "echo", "-j8", ":::", "a"]),
            [
                "--keep-order",
                "--jobs=4",
                "--dry-run",
                "--",
                "echo",
                "-j8",
                ":::",
                "a"
            ]
        );
        assert_eq!(
            norm(&["--DRY-RUN", "--jl", "log", "-N0", "echo"]),
            [
                "--dry-run",
                "--joblog=log",
                "--max-replace-args=0",
                "--",
                "echo"
            ]
        );
        assert_eq!(
            norm(&["-0a", "f", "x"]),
            ["--null", "--arg-file=f", "--", "x"]
        );
        assert_eq!(norm(&["--", "-x"]), ["--", "-x"]);
        assert_eq!(
            norm(&["--halt=now,fail=1", "-X"]),
            ["--halt=now,fail=1", "--context-replace", "--"]
        );
    }

    #[test]
    fn optional_values_take_the_next_word_unless_it_is_an_option() {
        assert_eq!(norm(&["-i", "echo", "x"]), ["--replace=echo", "--", "x"]);
        assert_eq!(
            norm(&["-i", "-k", "x"]),
            ["--replace=", "--keep-order", "--", "x"]
        );
        assert_eq!(norm(&["-ix", "echo"]), ["--replace=x", "--", "echo"]);
        assert_eq!(norm(&["--eof=foo", "echo"]), ["--eof=foo", "--", "echo"]);
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(
            err(&["--keep-ordr"]),
            "unknown option '--keep-ordr' (did you mean '--keep-order'?)"
        );
        assert!(
            err(&["--re"]).starts_with("option '--re' is ambiguous"),
            "{}",
            err(&["--re"])
        );
        assert_eq!(err(&["-kz"]), "unknown option '-z' in '-kz'");
        assert_eq!(err(&["--tag=x"]), "option --tag takes no value");
        assert_eq!(err(&["-j"]), "option -j needs a value");
        assert!(err(&["--hostgroups"]).contains("is not available yet"));
    }

    #[test]
    fn herds_own_options_are_known_too() {
        assert_eq!(
            norm(&["--json", "-", "--eof-grace", "2", "--events-o", "echo"]),
            ["--json=-", "--eof-grace=2", "--events-output", "--", "echo"]
        );
    }
}
