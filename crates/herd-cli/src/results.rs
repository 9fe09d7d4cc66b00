//! `--results NAME`: each job's output in files, in GNU parallel's layouts, written as it
//! arrives (so a long run's output is on disk, and can be followed with `tail -f`, while it
//! runs, never held in memory for it). As in GNU parallel, output kept this way is not printed.
//!
//! - NAME without replacement strings is a directory tree: `NAME/<column>/<value>/…/stdout`,
//!   `stderr` and `seq`, one level pair per column of each input (named by `--header`, else
//!   numbered), values escaped so that each stays one directory: `\` `\t` `\0` and `/` as
//!   `\\` `\t` `\0` `\_`.
//! - NAME with replacement strings names files: `my_{}` gives `my_foo`, `my_foo.err`,
//!   `my_foo.seq`; a name ending in `/` is a directory holding `stdout`, `stderr`, `seq`.

use herd_engine::Stream;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where one job's output goes (`None`: not kept).
#[derive(Debug, Clone)]
pub struct ResultFiles {
    pub stdout: PathBuf,
    pub stderr: Option<PathBuf>,
    pub seq: Option<PathBuf>,
}

impl ResultFiles {
    /// The three files in the directory `dir`.
    pub fn in_dir(dir: &Path) -> ResultFiles {
        ResultFiles {
            stdout: dir.join("stdout"),
            stderr: Some(dir.join("stderr")),
            seq: Some(dir.join("seq")),
        }
    }

    /// `name`, `name.err`, `name.seq`.
    pub fn named(name: PathBuf) -> ResultFiles {
        let with = |ext: &str| {
            let mut p = name.clone().into_os_string();
            p.push(ext);
            PathBuf::from(p)
        };
        ResultFiles {
            stderr: Some(with(".err")),
            seq: Some(with(".seq")),
            stdout: name,
        }
    }

    /// `--files`: stdout in a new file in `dir`, whose name herd prints; stderr is not kept
    /// (GNU parallel's behaviour).
    pub fn temporary(dir: &Path, seq: u64) -> ResultFiles {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("herd{}_{seq}_{nanos:08x}.par", std::process::id());
        ResultFiles {
            stdout: dir.join(name),
            stderr: None,
            seq: None,
        }
    }
}

/// A value as one directory name (GNU's escapes), at most 255 bytes (a name's limit).
fn dir_name(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for &b in value {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0 => out.extend_from_slice(b"\\0"),
            b'/' => out.extend_from_slice(b"\\_"),
            _ => out.push(b),
        }
    }
    out.truncate(255);
    out
}

/// Perl's number for a string: its leading number, else 0 (GNU sorts column names so).
fn perl_number(s: &[u8]) -> f64 {
    let text = String::from_utf8_lossy(s);
    let text = text.trim_start();
    let end = text
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && (c == '-' || c == '+'))))
        .map_or(text.len(), |(i, _)| i);
    text[..end].parse().unwrap_or(0.0)
}

/// The tree layout's directory for a job's inputs: for each input, a `<column>/<value>` pair
/// per column, the columns in the order of their names (numerically, then as text).
pub fn tree_dir(root: &Path, tuples: &[Vec<Vec<u8>>], columns: &[Vec<u8>]) -> PathBuf {
    let mut dir = root.as_os_str().as_encoded_bytes().to_vec();
    for tuple in tuples {
        let name = |i: usize| -> Vec<u8> {
            columns
                .get(i)
                .cloned()
                .unwrap_or_else(|| (i + 1).to_string().into_bytes())
        };
        let mut order: Vec<usize> = (0..tuple.len()).collect();
        order.sort_by(|&a, &b| {
            let (na, nb) = (name(a), name(b));
            perl_number(&na)
                .total_cmp(&perl_number(&nb))
                .then_with(|| na.cmp(&nb))
        });
        for i in order {
            dir.push(b'/');
            dir.extend(dir_name(&name(i)));
            dir.push(b'/');
            dir.extend(dir_name(&tuple[i]));
        }
    }
    path_of(dir)
}

#[cfg(unix)]
pub fn path_of(bytes: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

#[cfg(not(unix))]
pub fn path_of(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
}

/// The result files of the running jobs.
#[derive(Default)]
pub struct Results {
    open: HashMap<u64, (ResultFiles, File, Option<File>)>,
}

fn create(path: &Path) -> Result<File, String> {
    let make = || {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        File::create(path)
    };
    make().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

impl Results {
    /// A job (or a run of it again, under `--retries`) starts: its files are made afresh, and
    /// `seq` holds its number.
    pub fn start(&mut self, seq: u64, files: &ResultFiles) -> Result<(), String> {
        if let Some(path) = &files.seq {
            create(path)?
                .write_all(seq.to_string().as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        let out = create(&files.stdout)?;
        let err = files.stderr.as_deref().map(create).transpose()?;
        self.open.insert(seq, (files.clone(), out, err));
        Ok(())
    }

    /// A chunk of a job's output.
    pub fn write(&mut self, seq: u64, stream: Stream, data: &[u8]) -> Result<(), String> {
        let Some((files, out, err)) = self.open.get_mut(&seq) else {
            return Ok(());
        };
        let (file, path) = match (stream, err, &files.stderr) {
            (Stream::Stdout, _, _) => (out, &files.stdout),
            (Stream::Stderr, Some(err), Some(path)) => (err, path),
            _ => return Ok(()),
        };
        file.write_all(data)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// A job finished: its files are closed (and made, if it never started).
    pub fn finish(&mut self, seq: u64, files: &ResultFiles) -> Result<(), String> {
        if self.open.remove(&seq).is_none() {
            self.start(seq, files)?;
            self.open.remove(&seq);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<Vec<u8>> {
        s.iter().map(|x| x.as_bytes().to_vec()).collect()
    }

    #[test]
    fn the_tree_names_columns_and_escapes_values() {
        let root = Path::new("out");
        assert_eq!(
            tree_dir(root, &[v(&["a/b", "c\\d\te"])], &[]),
            Path::new("out/1/a\\_b/2/c\\\\d\\te")
        );
        // Named columns in order of their names; -n 2 gives two inputs' pairs.
        assert_eq!(
            tree_dir(
                root,
                &[v(&["S", "red"]), v(&["M", "blue"])],
                &v(&["size", "colour"])
            ),
            Path::new("out/colour/red/size/S/colour/blue/size/M")
        );
        assert_eq!(
            tree_dir(root, &[v(&["x", "y"])], &v(&["10", "9"])),
            Path::new("out/9/y/10/x")
        );
    }
}

/// `--results NAME.csv`, `.tsv` or `.json` (`-.csv` … for stdout): one row (or JSON object)
/// per finished job in one file, GNU parallel's columns: Seq, Host, Starttime, JobRuntime,
/// Send, Receive, Exitval, Signal, Command, the values (V1… or the `--header` names), Stdout,
/// Stderr. The file is written as jobs finish.
pub struct Table {
    out: Box<dyn Write + Send>,
    form: TableForm,
    /// The values' column names (`--header`), else V1, V2, ….
    columns: Vec<Vec<u8>>,
    header_written: bool,
    /// `-k`: rows wait for the jobs before them (rendered, in memory), as their output would.
    keep_order: bool,
    waiting: std::collections::BTreeMap<u64, Option<Vec<u8>>>,
    next_seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TableForm {
    Separated(u8),
    Json,
}

/// One finished job, as a table row.
pub struct Row<'a> {
    pub seq: u64,
    pub result: &'a herd_engine::JobResult,
    pub command: &'a [u8],
    pub values: &'a [Vec<u8>],
}

/// GNU's CSV quoting: a field with a quote, white space, the separator or NUL is quoted, its
/// quotes doubled.
fn separated(field: &[u8], sep: u8, out: &mut Vec<u8>) {
    let quote = field
        .iter()
        .any(|&b| b == b'"' || b == sep || b == 0 || b.is_ascii_whitespace());
    if !quote {
        out.extend_from_slice(field);
        return;
    }
    out.push(b'"');
    for &b in field {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Fields joined by `sep`, each quoted as needed, and a newline.
fn separated_line<'f>(fields: impl Iterator<Item = &'f [u8]>, sep: u8, out: &mut Vec<u8>) {
    for (i, f) in fields.enumerate() {
        if i > 0 {
            out.push(sep);
        }
        separated(f, sep, out);
    }
    out.push(b'\n');
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct JsonRow {
    seq: u64,
    host: &'static str,
    starttime: f64,
    job_runtime: f64,
    send: u64,
    receive: u64,
    exitval: i32,
    signal: i32,
    command: String,
    #[serde(rename = "V")]
    v: Vec<String>,
    stdout: String,
    stderr: String,
}

impl Table {
    /// The table `name` asks for, if it ends in .csv, .tsv or .json.
    pub fn open(
        name: &Path,
        columns: &[Vec<u8>],
        keep_order: bool,
    ) -> Option<Result<Table, String>> {
        let text = name.to_string_lossy();
        let lower = text.to_ascii_lowercase();
        let form = if lower.ends_with(".csv") {
            TableForm::Separated(b',')
        } else if lower.ends_with(".tsv") {
            TableForm::Separated(b'\t')
        } else if lower.ends_with(".json") {
            TableForm::Json
        } else {
            return None;
        };
        let out: Result<Box<dyn Write + Send>, String> = if text.starts_with("-.") {
            Ok(Box::new(std::io::stdout()))
        } else {
            File::create(name)
                .map(|f| Box::new(std::io::BufWriter::new(f)) as Box<dyn Write + Send>)
                .map_err(|e| format!("cannot write {}: {e}", name.display()))
        };
        Some(out.map(|out| Table {
            out,
            form,
            columns: columns.to_vec(),
            header_written: false,
            keep_order,
            waiting: Default::default(),
            next_seq: 1,
        }))
    }

    /// Writes a finished job's row (and, before the first, the header).
    pub fn row(&mut self, row: &Row<'_>) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("cannot write the --results table: {e}");
        let r = row.result;
        let start = r
            .start_time
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let stdout = r.stdout.to_vec().map_err(|e| fail(e.into()))?;
        let stderr = r.stderr.to_vec().map_err(|e| fail(e.into()))?;
        let mut line = Vec::new();
        match self.form {
            TableForm::Separated(sep) => {
                if !self.header_written {
                    let mut names: Vec<Vec<u8>> = [
                        "Seq",
                        "Host",
                        "Starttime",
                        "JobRuntime",
                        "Send",
                        "Receive",
                        "Exitval",
                        "Signal",
                        "Command",
                    ]
                    .iter()
                    .map(|s| s.as_bytes().to_vec())
                    .collect();
                    names.extend((0..row.values.len()).map(|i| {
                        self.columns
                            .get(i)
                            .cloned()
                            .unwrap_or_else(|| format!("V{}", i + 1).into_bytes())
                    }));
                    names.extend([b"Stdout".to_vec(), b"Stderr".to_vec()]);
                    // Written at once: under -k the first row rendered need not be the first.
                    let mut header = Vec::new();
                    separated_line(names.iter().map(Vec::as_slice), sep, &mut header);
                    self.out.write_all(&header).map_err(fail)?;
                    self.header_written = true;
                }
                let numbers = [
                    row.seq.to_string(),
                    ":".to_string(),
                    format!("{start:.3}"),
                    format!("{:.3}", r.duration.as_secs_f64()),
                    "0".to_string(),
                    (stdout.len() + stderr.len()).to_string(),
                    r.exit_code().unwrap_or(-1).to_string(),
                    r.signal().unwrap_or(0).to_string(),
                ];
                let fields = numbers
                    .iter()
                    .map(|n| n.as_bytes())
                    .chain([row.command])
                    .chain(row.values.iter().map(Vec::as_slice))
                    .chain([&stdout[..], &stderr[..]]);
                separated_line(fields, sep, &mut line);
            }
            TableForm::Json => {
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                let object = JsonRow {
                    seq: row.seq,
                    host: ":",
                    starttime: (start * 1000.0).round() / 1000.0,
                    job_runtime: (r.duration.as_secs_f64() * 1000.0).round() / 1000.0,
                    send: 0,
                    receive: (stdout.len() + stderr.len()) as u64,
                    exitval: r.exit_code().unwrap_or(-1),
                    signal: r.signal().unwrap_or(0),
                    command: text(row.command),
                    v: row.values.iter().map(|v| text(v)).collect(),
                    stdout: text(&stdout),
                    stderr: text(&stderr),
                };
                line = serde_json::to_vec(&object).map_err(|e| e.to_string())?;
                line.push(b'\n');
            }
        }
        if self.keep_order {
            self.waiting.insert(row.seq, Some(line));
            return self.release();
        }
        self.write(vec![line])
    }

    /// `-k`: a job that will have no row; the rows after it need not wait for it.
    pub fn skip(&mut self, seq: u64) -> Result<(), String> {
        if self.keep_order {
            self.waiting.insert(seq, None);
            return self.release();
        }
        Ok(())
    }

    fn release(&mut self) -> Result<(), String> {
        let mut ready = Vec::new();
        while let Some(line) = self.waiting.remove(&self.next_seq) {
            self.next_seq += 1;
            ready.extend(line);
        }
        self.write(ready)
    }

    /// The end of the run: rows still waiting (behind a job that never came) are written.
    pub fn finish(&mut self) -> Result<(), String> {
        let left = std::mem::take(&mut self.waiting).into_values().flatten();
        self.write(left.collect())
    }

    fn write(&mut self, lines: Vec<Vec<u8>>) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("cannot write the --results table: {e}");
        for line in lines {
            self.out.write_all(&line).map_err(fail)?;
        }
        self.out.flush().map_err(fail)
    }
}
