//! From a job's values to the job: the command line composed from the templates (with the
//! values of GNU's Perl expressions, `--filter` and `{choose_k}`/`{uniq}` deciding whether it
//! runs at all), the program and arguments that run it (a shell, or the program itself when
//! no shell is needed), its environment, and where `--results`/`--files` keep its output.

use crate::batch::JobArgs;
use crate::blockfile::AsFile;
use crate::compose::{self, Composer, Seg, Shell};
use crate::options::CommandSpec;
use crate::perl::{JobContext, Perl, PerlError};
use crate::remote::RemoteCommand;
use crate::results::ResultFiles;
use crate::run::Fatal;
use crate::template::{Exprs, Fill, PerlValues, Template};
use herd_engine::{Environment, Job, Stdin};
use std::cell::RefCell;
use std::ffi::OsString;
use std::time::Duration;

#[cfg(unix)]
pub fn os(v: Vec<u8>) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    OsString::from_vec(v)
}

#[cfg(not(unix))]
pub fn os(v: Vec<u8>) -> OsString {
    String::from_utf8_lossy(&v).into_owned().into()
}

/// The job that runs `line` with `shell`: `shell -c line` on Unix; on Windows
/// `cmd /d /s /c` with the line as a verbatim command-line tail, since `cmd` parses its own
/// command line and the line must not be quoted as an argument.
fn shell_job(shell: &Shell, line: Vec<u8>) -> (Job, Vec<Vec<u8>>) {
    if cfg!(windows) {
        let argv = vec![
            b"cmd".to_vec(),
            b"/d".to_vec(),
            b"/s".to_vec(),
            b"/c".to_vec(),
            line.clone(),
        ];
        (Job::shell(os(line)), argv)
    } else {
        let program = shell.path.as_os_str().as_encoded_bytes().to_vec();
        let argv = vec![program, b"-c".to_vec(), line];
        (job_of(&argv), argv)
    }
}

fn job_of(argv: &[Vec<u8>]) -> Job {
    Job::new(os(argv[0].clone())).args(argv[1..].iter().cloned().map(os))
}

/// This machine's name, for `--workdir ...` on the hosts.
fn local_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .unwrap_or_else(|| "localhost".into())
}

/// `--workdir .` on the hosts: this directory, relative to $HOME when beneath it (so it
/// names the same place under another home), as GNU parallel does.
fn here_for_hosts() -> String {
    let here = std::env::current_dir().unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        if let Ok(rel) = here.strip_prefix(&home) {
            return rel.to_string_lossy().into_owned();
        }
    }
    here.to_string_lossy().into_owned()
}

/// The terminal a job reads with `--tty`: the controlling terminal, whatever herd's stdin is.
#[cfg(unix)]
pub const TERMINAL: &str = "/dev/tty";
#[cfg(windows)]
pub const TERMINAL: &str = "CONIN$";

/// How the feeder makes jobs.
pub struct JobMaker {
    spec: CommandSpec,
    /// The command line's template; `None` when each input is itself a command.
    template: Option<Template>,
    /// `-q`: one template per word.
    words: Vec<Template>,
    tagstring: Option<Template>,
    /// `--filter`: Perl code to be true for a job to run.
    filters: Vec<Template>,
    /// `--results`: where each job's output goes.
    pub results: Option<ResultsLayout>,
    /// The Perl expressions of every template, and the perl that evaluates them (started by
    /// [`JobMaker::start_perl`] when there are any).
    exprs: Exprs,
    perl: Option<RefCell<Perl>>,
    pub composer: Composer,
    /// herd's environment, captured once: every job sets `PARALLEL_SEQ` and `PARALLEL_JOBSLOT`
    /// over it without a copy of the whole environment per spawn.
    env: Environment,
    /// The number of jobs, where known (`{##}`).
    pub total: Option<u64>,
    pub slots: usize,
    pub timeout: Option<Duration>,
    pub stream: bool,
    pub collect: bool,
    /// `--tty`, `-o`.
    pub terminal: Option<crate::options::Terminal>,
    /// `--retries`: how many times a failing job may run in all.
    pub retries: u32,
    pub max_output: Option<u64>,
    /// Keep each job's values (a `--results` table shows them).
    pub keep_values: bool,
    /// `-S`: jobs may run on other hosts; these are what they need there.
    pub remote: Option<RemoteSetup>,
    /// `--cat`, `--fifo`: each job's value is its block's file.
    pub block_file: Option<AsFile>,
}

/// What jobs for other hosts carry (`-S`).
pub struct RemoteSetup {
    /// `--env`: names of variables exported to them, with herd's values.
    pub env: Vec<(String, Vec<u8>)>,
    /// `--termseq`'s grace between SIGTERM and SIGKILL, for the remote kill.
    pub kill_grace: Duration,
    /// `--transferfile`, `--return`: each job's file names.
    transfer: Vec<Template>,
    returns: Vec<Template>,
    cleanup: bool,
    workdir: Option<RemoteDir>,
}

/// `--workdir` on the hosts.
enum RemoteDir {
    /// `...`: a directory of the job's own, named from this machine's name and herd's pid.
    Own(String),
    Named(Template),
}

/// `--results NAME`'s layouts (see [`crate::results`]).
pub enum ResultsLayout {
    /// NAME has no replacement string: a tree of column/value directories under it.
    Tree(std::path::PathBuf),
    /// NAME has replacement strings: it names each job's files.
    Named(Template),
    /// `--files`: stdout in a new file in this directory, its name printed.
    Files(std::path::PathBuf),
}

/// Why a job does not run.
pub enum NotRun {
    /// `skip()`, `--filter`, `{choose_k}`, `{uniq}`: the job's line.
    Skipped(Vec<u8>),
    /// A Perl expression failed for this job: the line, the reason.
    Failed(Vec<u8>, String),
    /// No job can be made any more (the perl helper is gone).
    Fatal(String),
}

/// What a job's Perl expressions and vetoes decided.
#[derive(Default)]
struct Evaluation {
    perl: PerlValues,
    skip: bool,
    error: Option<String>,
}

/// A job ready to submit, and what herd shows of it.
pub struct Made {
    pub job: Job,
    pub argv: Vec<Vec<u8>>,
    pub line: Vec<u8>,
    pub tag: Vec<u8>,
    pub results: Option<ResultFiles>,
    /// The job's values, when [`JobMaker::keep_values`] asks for them.
    pub values: Vec<Vec<u8>>,
    /// The same command for another host (`-S`).
    pub remote: Option<RemoteCommand>,
}

impl JobMaker {
    pub fn new(
        spec: CommandSpec,
        sources: usize,
        check_positions: bool,
        append: bool,
    ) -> Result<JobMaker, Fatal> {
        let mut exprs = Exprs::default();
        let mut parse =
            |line: &[u8]| Template::parse(line, &spec.names, &mut exprs).map_err(|e| Fatal(e.0));
        let mut template = None;
        let mut words = Vec::new();
        if spec.quote {
            words = spec
                .words
                .iter()
                .map(|w| parse(w))
                .collect::<Result<_, _>>()?;
            if append && !words.iter().any(Template::has_replacement) {
                words.push(parse(b"{}")?);
            }
        } else if !spec.words.is_empty() {
            let mut t = parse(&spec.words.join(&b' '))?;
            if append && !t.has_replacement() {
                t.append_all();
            }
            template = Some(t);
        }
        let max_position = template
            .iter()
            .chain(&words)
            .map(Template::max_position)
            .max()
            .unwrap_or(0);
        if check_positions && max_position > sources {
            let have = if sources == 1 {
                "there is 1 input source".to_string()
            } else {
                format!("there are {sources} input sources")
            };
            return Err(Fatal(format!(
                "{{{max_position}}} names input source {max_position}, but {have}"
            )));
        }
        let tagstring = spec.tagstring.as_deref().map(&mut parse).transpose()?;
        let filters = spec
            .filters
            .iter()
            .map(|f| parse(f))
            .collect::<Result<_, _>>()?;
        Ok(JobMaker {
            template,
            words,
            tagstring,
            filters,
            results: None,
            exprs,
            perl: None,
            composer: Composer::new(Shell::detect()),
            env: Environment::capture(),
            spec,
            total: None,
            slots: 1,
            timeout: None,
            stream: false,
            collect: false,
            terminal: None,
            retries: 1,
            max_output: None,
            keep_values: false,
            remote: None,
            block_file: None,
        })
    }

    /// `-S`: what remote jobs carry: `--env` values, the kill grace, and the templates of
    /// `--transferfile`, `--return` and `--workdir`.
    pub fn set_remote(
        &mut self,
        remote: &crate::options::Remote,
        kill_grace: Duration,
    ) -> Result<(), Fatal> {
        let mut parse = |text: &str| {
            Template::parse(text.as_bytes(), &self.spec.names, &mut self.exprs)
                .map_err(|e| Fatal(e.0))
        };
        let transfer = remote
            .transfer
            .iter()
            .map(|t| parse(t))
            .collect::<Result<_, _>>()?;
        let returns = remote
            .returns
            .iter()
            .map(|t| parse(t))
            .collect::<Result<_, _>>()?;
        let workdir = match remote.workdir.as_deref() {
            None => None,
            Some("...") => Some(RemoteDir::Own(format!(
                ".parallel/tmp/{}-{}",
                local_host_name(),
                std::process::id()
            ))),
            Some(".") => Some(RemoteDir::Named(parse(&here_for_hosts())?)),
            Some(dir) => Some(RemoteDir::Named(parse(dir)?)),
        };
        let env = remote
            .env
            .iter()
            .filter_map(|name| {
                let value = std::env::var_os(name)?;
                Some((name.clone(), value.as_encoded_bytes().to_vec()))
            })
            .collect();
        self.remote = Some(RemoteSetup {
            env,
            kill_grace,
            transfer,
            returns,
            cleanup: remote.cleanup,
            workdir,
        });
        Ok(())
    }

    /// `--results NAME`: a tree under NAME, or, when NAME has replacement strings, the files
    /// they name.
    pub fn set_results(&mut self, name: &std::path::Path) -> Result<(), Fatal> {
        let text = name.as_os_str().as_encoded_bytes();
        let text = crate::template::name_columns(text, &self.spec.columns, &self.spec.names);
        let template =
            Template::parse(&text, &self.spec.names, &mut self.exprs).map_err(|e| Fatal(e.0))?;
        self.results = Some(if template.has_replacement() {
            ResultsLayout::Named(template)
        } else {
            ResultsLayout::Tree(name.to_path_buf())
        });
        Ok(())
    }

    fn result_files(&self, fill: &Fill<'_>, args: &JobArgs) -> Option<ResultFiles> {
        Some(match self.results.as_ref()? {
            ResultsLayout::Files(dir) => ResultFiles::temporary(dir, fill.seq),
            ResultsLayout::Tree(root) => ResultFiles::in_dir(&crate::results::tree_dir(
                root,
                &args.tuples,
                &self.spec.columns,
            )),
            ResultsLayout::Named(t) => {
                // Filled unquoted, as GNU fills it: a file name, not shell code.
                let name = compose::text(&t.compose(fill, false));
                if name.ends_with(b"/") {
                    ResultFiles::in_dir(&crate::results::path_of(name))
                } else {
                    ResultFiles::named(crate::results::path_of(name))
                }
            }
        })
    }

    /// Starts the perl that evaluates the run's Perl expressions, if there are any.
    pub fn start_perl(&mut self) -> Result<(), Fatal> {
        if self.exprs.0.is_empty() && self.filters.is_empty() {
            return Ok(());
        }
        let perl = Perl::start(
            self.exprs.0.clone(),
            self.composer.shell.dialect,
            self.slots,
        );
        self.perl = Some(RefCell::new(perl.map_err(Fatal)?));
        Ok(())
    }

    fn templates(&self) -> impl Iterator<Item = &Template> + Clone {
        let named_results = match &self.results {
            Some(ResultsLayout::Named(t)) => Some(t),
            _ => None,
        };
        self.template
            .iter()
            .chain(&self.words)
            .chain(&self.tagstring)
            .chain(named_results)
    }

    pub fn uses_total(&self) -> bool {
        let perl_counts = |code: &[u8]| code.windows(10).any(|w| w == b"total_jobs");
        self.templates().any(Template::uses_total)
            || self.exprs.0.iter().any(|e| perl_counts(e))
            || self.spec.filters.iter().any(|f| perl_counts(f))
    }

    /// Evaluates the job's Perl expressions, `--filter` and `{choose_k}`/`{uniq}`.
    fn evaluate(&self, values: &[Vec<u8>], seq: u64, slot: usize) -> Result<Evaluation, Fatal> {
        let mut done = Evaluation::default();
        if self.templates().any(|t| t.vetoed(values)) {
            done.skip = true;
            return Ok(done);
        }
        let Some(perl) = &self.perl else {
            return Ok(done);
        };
        let mut perl = perl.borrow_mut();
        let mut requests: Vec<(usize, &[u8])> = Vec::new();
        let mut all = Vec::new();
        for t in self.templates().chain(&self.filters) {
            t.perl_requests(values, &mut all);
        }
        for r in all {
            // Each expression once per value and job, in the order the line uses them.
            if !requests.contains(&r) {
                requests.push(r);
            }
        }
        let job = JobContext {
            seq,
            slot,
            total: self.total,
            args: values,
        };
        let failed = |e: PerlError, done: &mut Evaluation| match e {
            PerlError::Expression(reason) => {
                done.error = Some(reason);
                Ok(())
            }
            PerlError::Helper(reason) => Err(Fatal(reason)),
        };
        if !requests.is_empty() {
            match perl.evaluate(&job, &requests) {
                Ok(evaluated) => {
                    done.skip = evaluated.skip;
                    done.perl.0 = requests
                        .iter()
                        .zip(evaluated.values)
                        .map(|((e, v), (out, uq))| (*e, v.to_vec(), out, uq))
                        .collect();
                }
                Err(e) => {
                    failed(e, &mut done)?;
                    return Ok(done);
                }
            }
        }
        for filter in &self.filters {
            if done.skip {
                break;
            }
            let fill = Fill {
                values,
                seq,
                slot,
                total: self.total,
                slots: self.slots,
                perl: Some(&done.perl),
            };
            // GNU fills --filter's strings unquoted: the values become Perl code.
            let code = compose::text(&filter.compose(&fill, false));
            match perl.filter(&job, &code) {
                Ok(keep) => done.skip = !keep,
                Err(e) => {
                    failed(e, &mut done)?;
                    break;
                }
            }
        }
        Ok(done)
    }

    fn segs(&self, fill: &Fill<'_>) -> Vec<Seg> {
        match &self.template {
            Some(t) => t.compose(fill, self.spec.context),
            None if !self.words.is_empty() => Template::compose_words(&self.words, fill),
            // Each input is itself a command.
            None => vec![Seg::Code(fill.values.join(&b' '))],
        }
    }

    /// The length of the line a job with these values would run (`-m`, `-X`, `-s`).
    pub fn measure(&self, values: &[Vec<u8>]) -> usize {
        let evaluation = self.evaluate(values, 1, 1).unwrap_or_default();
        let fill = Fill {
            values,
            seq: 1,
            slot: 1,
            total: self.total,
            slots: self.slots,
            perl: Some(&evaluation.perl),
        };
        // GNU's measure: the words and a terminating NUL each (the line's spaces and one more).
        self.composer.shell.line(&self.segs(&fill)).len() + 1
    }

    pub fn make(&mut self, args: &JobArgs, seq: u64, slot: usize) -> Result<Made, NotRun> {
        let evaluation = self
            .evaluate(&args.values, seq, slot)
            .map_err(|e| NotRun::Fatal(e.0))?;
        let fill = Fill {
            values: &args.values,
            seq,
            slot,
            total: self.total,
            slots: self.slots,
            perl: Some(&evaluation.perl),
        };
        let segs = self.segs(&fill);
        let line = self.composer.shell.line(&segs);
        if let Some(reason) = evaluation.error.or_else(|| args.too_long.clone()) {
            return Err(NotRun::Failed(line, reason));
        }
        if evaluation.skip {
            return Err(NotRun::Skipped(line));
        }
        let (mut job, mut argv) = match self.composer.direct_argv(&segs) {
            Some(argv) => (job_of(&argv), argv),
            None => shell_job(&self.composer.shell, line.clone()),
        };
        if let Some(n) = self.spec.nice {
            let mut wrapped = vec![b"nice".to_vec(), b"-n".to_vec(), n.to_string().into_bytes()];
            wrapped.append(&mut argv);
            argv = wrapped;
            job = job_of(&argv);
        }
        // --cat, --fifo: the block's file is the job's only value.
        let block_file = self.block_file.zip(args.values.first());
        if let Some((AsFile::Fifo, fifo)) = block_file {
            argv = crate::blockfile::fifo_wrapped(fifo, argv);
            job = job_of(&argv);
        }
        let results = self.result_files(&fill, args);
        let mut tag = match &self.tagstring {
            Some(t) => compose::text(&t.compose(&fill, false)),
            None => args
                .tuples
                .iter()
                .map(|t| t.join(&b' '))
                .collect::<Vec<_>>()
                .join(&b' '),
        };
        tag.push(b'\t');
        job = job
            .environment(&self.env)
            .env("PARALLEL_SEQ", seq.to_string())
            .env("PARALLEL_JOBSLOT", slot.to_string());
        if let Some(var) = &self.spec.process_slot_var {
            job = job.env(var, (slot - 1).to_string());
        }
        if let Some((_, file)) = block_file {
            job = job.env("PARALLEL_TMP", os(file.clone()));
        }
        if let Some(dir) = &self.spec.workdir {
            job = job.current_dir(dir);
        }
        let mut job = self.settle(job);
        if let Some(terminal) = self.terminal {
            job = job
                .foreground(true)
                .stdin(Stdin::file(TERMINAL))
                .inherit_output(terminal.output);
        }
        let remote = self.remote.as_ref().map(|setup| {
            let mut line = line.clone();
            if let Some(n) = self.spec.nice {
                line = [format!("nice -n {n} ").as_bytes(), &line].concat();
            }
            let mut env = vec![
                ("PARALLEL_SEQ".to_string(), seq.to_string().into_bytes()),
                (
                    "PARALLEL_JOBSLOT".to_string(),
                    slot.to_string().into_bytes(),
                ),
            ];
            if let Some(var) = &self.spec.process_slot_var {
                env.push((var.clone(), (slot - 1).to_string().into_bytes()));
            }
            env.extend(setup.env.iter().cloned());
            let render = |t: &Template| compose::text(&t.compose(&fill, false));
            let (workdir, own_workdir) = match &setup.workdir {
                None => (None, false),
                Some(RemoteDir::Own(base)) => (Some(format!("{base}-{seq}").into_bytes()), true),
                Some(RemoteDir::Named(t)) => (Some(render(t)), false),
            };
            RemoteCommand {
                workdir,
                own_workdir,
                transfer: setup.transfer.iter().map(render).collect(),
                returns: setup.returns.iter().map(render).collect(),
                cleanup: setup.cleanup,
                line,
                shell: self
                    .composer
                    .shell
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "sh".into()),
                env,
                kill_grace: setup.kill_grace,
            }
        });
        Ok(Made {
            job,
            argv,
            line,
            tag,
            results,
            values: if self.keep_values {
                args.values.clone()
            } else {
                Vec::new()
            },
            remote,
        })
    }

    /// What every job of the run has, wherever it runs: how its output is taken, its
    /// timeout, its output limit.
    pub fn settle(&self, job: Job) -> Job {
        let mut job = job.stream_output(self.stream).collect_output(self.collect);
        if let Some(t) = self.timeout {
            job = job.timeout(t);
        }
        if let Some(m) = self.max_output {
            job = job.max_output(m);
        }
        job
    }
}
