//! GNU parallel's Perl expressions: `{= perl =}`, `--rpl`'s strings and `--filter`.
//!
//! GNU parallel evaluates them inside itself, since it is a Perl program. herd keeps one
//! long-lived `perl` beside the run (started only when a command uses an expression) and
//! asks it, once per job, for every value the job's expressions give. The expressions are
//! compiled once, up front, so a syntax error stops herd before any job starts; they run in
//! GNU's environment: `$_` is the value, `@arg` the job's arguments from `$arg[1]`, `$job`
//! answers `seq()` and `slot()`, and `Q`, `pQ`, `uq`, `skip`, `seq`, `slot`, `total_jobs`,
//! `hash` and the `yyyy_mm_dd…` functions are defined. Global variables live as long as the
//! run, as in GNU parallel.
//!
//! The helper reads nothing but its stdin: when herd ends, however it ends, the helper sees
//! end of file and exits.
//!
//! Messages both ways are a field count, then each field as a 4-byte big-endian length and
//! its bytes: values may hold any byte.

use crate::compose::Dialect;
use std::io::{BufReader, BufWriter, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The helper program. Its `Q` quotes as herd quotes for the job's shell.
const HELPER: &str = r#"
use strict;
use POSIX ();
use File::Spec ();
# The protocol has its own handles: an expression that prints writes to stderr, and one that
# reads stdin reads nothing, instead of breaking the protocol.
open(my $from_herd, '<&', \*STDIN) or die;
open(my $to_herd, '>&', \*STDOUT) or die;
open(STDIN, '<', File::Spec->devnull());
open(STDOUT, '>&', \*STDERR);
binmode $from_herd; binmode $to_herd;
my $dialect = $ARGV[0];
$Global::max_jobs_running = $ARGV[1];

sub get {
    my ($n) = @_;
    my $buf = '';
    while (length($buf) < $n) {
        my $r = sysread($from_herd, $buf, $n - length($buf), length($buf));
        if (!defined $r) { next if $!{EINTR}; exit 1; }
        exit 0 if $r == 0;
    }
    return $buf;
}
sub message {
    my $count = unpack('N', get(4));
    my @fields;
    push @fields, get(unpack('N', get(4))) for 1 .. $count;
    return @fields;
}
sub reply {
    my $out = pack('N', scalar @_);
    for my $f (@_) {
        my $b = defined $f ? "$f" : '';
        utf8::encode($b) if utf8::is_utf8($b);
        $out .= pack('N', length $b) . $b;
    }
    while (length $out) {
        my $w = syswrite($to_herd, $out);
        if (!defined $w) { next if $!{EINTR}; exit 1; }
        substr($out, 0, $w) = '';
    }
}

sub Q {
    my $s = shift;
    return "''" if !defined $s or $s eq '';
    if ($dialect eq 'csh') { $s =~ s/([^-_.+\/a-zA-Z0-9\x80-\xff])/\\$1/g; return $s; }
    return $s if $s =~ m{^[-_.+/a-zA-Z0-9]+$};
    if ($dialect eq 'fish') { $s =~ s/([\\'])/\\$1/g; return "'$s'"; }
    $s =~ s/'/'"'"'/g;
    $s = "'$s'";
    $s =~ s/^''(?=.)//s;
    $s =~ s/(?<=.)''$//s;
    return $s;
}
sub pQ { my $s = shift; $s =~ s/[\\\"\$\@]/\\$&/g; return $s; }
sub uniq { my %seen; return grep { !$seen{$_}++ } @_; }

package Job;
sub seq { $_[0]{seq} }
sub slot { $_[0]{slot} }
sub total_jobs { $_[0]{total} }
sub skip { $Arg::skipped = 1 }

package Arg;
our (@arg, $job, $skipped, $unquoted);
sub Q { ::Q(@_) }
sub pQ { ::pQ(@_) }
sub hash { require B; B::hash(@_) }
sub skip { $skipped = 1 }
sub uq { $unquoted = 1 }
sub seq { $job->seq }
sub slot { $job->slot }
sub total_jobs { $job->total_jobs }
sub yyyy_mm_dd_hh_mm_ss { POSIX::strftime("%Y-%m-%dT%H:%M:%S", localtime) }
sub yyyy_mm_dd_hh_mm { POSIX::strftime("%Y-%m-%dT%H:%M", localtime) }
sub yyyy_mm_dd { POSIX::strftime("%Y-%m-%d", localtime) }
sub hh_mm_ss { POSIX::strftime("%H:%M:%S", localtime) }
sub hh_mm { POSIX::strftime("%H:%M", localtime) }
sub yyyymmddhhmmss { POSIX::strftime("%Y%m%d%H%M%S", localtime) }
sub yyyymmddhhmm { POSIX::strftime("%Y%m%d%H%M", localtime) }
sub yyyymmdd { POSIX::strftime("%Y%m%d", localtime) }
sub hhmmss { POSIX::strftime("%H%M%S", localtime) }
sub hhmm { POSIX::strftime("%H%M", localtime) }

package main;
my @code;
sub context {
    my ($f) = @_;
    my ($seq, $slot, $total, $n) = splice(@$f, 0, 4);
    $Arg::job = bless { seq => $seq, slot => $slot, total => $total }, 'Job';
    @Arg::arg = (undef, splice(@$f, 0, $n));
    $Arg::skipped = 0;
}
while (1) {
    my ($what, @f) = message();
    if ($what eq 'compile') {
        my $failed;
        for my $i (0 .. $#f) {
            my $sub = eval "package Arg; sub { no strict; no warnings; my \$job = shift; $f[$i]\n}";
            if (!$sub) { $failed = [$i, $@]; last; }
            push @code, $sub;
        }
        $failed ? reply('error', @$failed) : reply('ok');
    } elsif ($what eq 'job') {
        context(\@f);
        my (@out, $failed);
        while (@f) {
            my ($id, $value) = splice(@f, 0, 2);
            local $_ = $value;
            $Arg::unquoted = 0;
            if (!eval { $code[$id]->($Arg::job); 1 }) { $failed = [$id, $@]; last; }
            push @out, $Arg::unquoted ? 1 : 0, $_;
        }
        $failed ? reply('error', @$failed) : reply('ok', $Arg::skipped ? 1 : 0, @out);
    } elsif ($what eq 'filter') {
        context(\@f);
        my $code = shift @f;
        my $job = $Arg::job;
        my $keep = eval "package Arg; no strict; no warnings; $code\n";
        $@ ? reply('error', 0, $@) : reply('ok', $keep ? 1 : 0);
    }
}
"#;

/// The job an expression is evaluated for.
pub struct JobContext<'a> {
    pub seq: u64,
    pub slot: usize,
    /// The number of jobs, where known (`total_jobs()`).
    pub total: Option<u64>,
    /// The job's arguments (`@arg`, from `$arg[1]`).
    pub args: &'a [Vec<u8>],
}

/// What went wrong evaluating.
pub enum PerlError {
    /// The expression failed (`die`, a runtime error): only this job is affected.
    Expression(String),
    /// The helper is gone: no expression can be evaluated any more.
    Helper(String),
}

/// What a job's expressions gave.
pub struct Evaluated {
    /// `skip()` was called: the job does not run.
    pub skip: bool,
    /// For each request, in order: the value, and whether `uq()` asked for it unquoted.
    pub values: Vec<(Vec<u8>, bool)>,
}

/// The running helper and the expressions it has compiled.
pub struct Perl {
    child: Child,
    input: Option<BufWriter<ChildStdin>>,
    output: BufReader<ChildStdout>,
    exprs: Vec<Vec<u8>>,
}

/// A perl expression as the user wrote it, for messages.
fn shown(expr: &[u8]) -> String {
    format!("{{={}=}}", String::from_utf8_lossy(expr))
}

fn first_line(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    text.trim_end().replace('\n', " ")
}

impl Perl {
    /// Starts the helper and compiles `exprs`. `dialect` is how `Q()` quotes; `slots` is
    /// `$Global::max_jobs_running`.
    pub fn start(exprs: Vec<Vec<u8>>, dialect: Dialect, slots: usize) -> Result<Perl, String> {
        let perl = crate::compose::which(b"perl").ok_or_else(|| {
            "Perl expressions ({= =}, --rpl, --filter, {choose_k}…) need perl, which is not on \
             PATH"
                .to_string()
        })?;
        let dialect = match dialect {
            Dialect::Csh => "csh",
            Dialect::Fish => "fish",
            Dialect::Posix | Dialect::Cmd => "posix",
        };
        let mut child = Command::new(perl)
            .arg("-e")
            .arg(HELPER)
            .arg(dialect)
            .arg(slots.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start perl for Perl expressions: {e}"))?;
        let input = child.stdin.take().map(BufWriter::new);
        let output = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut perl = Perl {
            child,
            input,
            output,
            exprs,
        };
        let mut fields: Vec<&[u8]> = vec![b"compile"];
        let exprs = perl.exprs.clone();
        fields.extend(exprs.iter().map(Vec::as_slice));
        match perl.call(&fields) {
            Ok(_) => Ok(perl),
            Err(PerlError::Expression(e) | PerlError::Helper(e)) => Err(e),
        }
    }

    fn send(&mut self, fields: &[&[u8]]) -> std::io::Result<()> {
        let input = self.input.as_mut().expect("helper input");
        input.write_all(&(fields.len() as u32).to_be_bytes())?;
        for f in fields {
            input.write_all(&(f.len() as u32).to_be_bytes())?;
            input.write_all(f)?;
        }
        input.flush()
    }

    fn receive(&mut self) -> std::io::Result<Vec<Vec<u8>>> {
        let mut word = [0u8; 4];
        self.output.read_exact(&mut word)?;
        let count = u32::from_be_bytes(word);
        let mut fields = Vec::with_capacity(count as usize);
        for _ in 0..count {
            self.output.read_exact(&mut word)?;
            let mut f = vec![0; u32::from_be_bytes(word) as usize];
            self.output.read_exact(&mut f)?;
            fields.push(f);
        }
        Ok(fields)
    }

    /// One request and its reply: the reply's fields after `ok`.
    fn call(&mut self, fields: &[&[u8]]) -> Result<Vec<Vec<u8>>, PerlError> {
        let gone = |e: std::io::Error| PerlError::Helper(format!("the perl helper stopped: {e}"));
        self.send(fields).map_err(gone)?;
        let mut reply = self.receive().map_err(gone)?;
        if reply.first().is_some_and(|w| w == b"ok") {
            reply.remove(0);
            return Ok(reply);
        }
        // `error`, the expression's number and perl's message.
        let which = reply
            .get(1)
            .and_then(|n| std::str::from_utf8(n).ok()?.parse::<usize>().ok())
            .and_then(|i| self.exprs.get(i));
        let message = reply.get(2).map_or_else(String::new, |m| first_line(m));
        let about = match (fields.first().copied(), which) {
            (Some(b"filter"), _) => format!(
                "--filter {}",
                String::from_utf8_lossy(fields.last().unwrap())
            ),
            (_, Some(e)) => shown(e),
            (_, None) => "Perl expression".into(),
        };
        let text = format!("cannot use {about}: {message}");
        Err(if fields.first() == Some(&&b"compile"[..]) {
            PerlError::Helper(text)
        } else {
            PerlError::Expression(text)
        })
    }

    fn with_context<'a>(
        what: &'a [u8],
        job: &'a JobContext<'_>,
        numbers: &'a [Vec<u8>],
    ) -> Vec<&'a [u8]> {
        let mut fields: Vec<&[u8]> = vec![what, &numbers[0], &numbers[1], &numbers[2], &numbers[3]];
        fields.extend(job.args.iter().map(Vec::as_slice));
        fields
    }

    fn numbers(job: &JobContext<'_>) -> Vec<Vec<u8>> {
        [
            job.seq.to_string(),
            job.slot.to_string(),
            job.total.map_or(String::new(), |t| t.to_string()),
            job.args.len().to_string(),
        ]
        .map(String::into_bytes)
        .to_vec()
    }

    /// Evaluates expressions for one job: each request is an expression's number and the
    /// value it gets as `$_`.
    pub fn evaluate(
        &mut self,
        job: &JobContext<'_>,
        requests: &[(usize, &[u8])],
    ) -> Result<Evaluated, PerlError> {
        let numbers = Self::numbers(job);
        let ids: Vec<Vec<u8>> = requests
            .iter()
            .map(|(id, _)| id.to_string().into_bytes())
            .collect();
        let mut fields = Self::with_context(b"job", job, &numbers);
        for ((_, value), id) in requests.iter().zip(&ids) {
            fields.push(id);
            fields.push(value);
        }
        let reply = self.call(&fields)?;
        let skip = reply.first().is_some_and(|s| s == b"1");
        let values = reply
            .get(1..)
            .unwrap_or_default()
            .chunks(2)
            .map(|pair| (pair.get(1).cloned().unwrap_or_default(), pair[0] == b"1"))
            .collect();
        Ok(Evaluated { skip, values })
    }

    /// `--filter`: whether the code (its replacement strings already filled) is true.
    pub fn filter(&mut self, job: &JobContext<'_>, code: &[u8]) -> Result<bool, PerlError> {
        let numbers = Self::numbers(job);
        let mut fields = Self::with_context(b"filter", job, &numbers);
        fields.push(code);
        let reply = self.call(&fields)?;
        Ok(reply.first().is_some_and(|k| k == b"1"))
    }
}

impl Drop for Perl {
    fn drop(&mut self) {
        // End of input ends the helper.
        self.input.take();
        let _ = self.child.wait();
    }
}
