//! Input sources and their combination.
//!
//! Sources are `:::` value lists, `::::` files (`-` is stdin), `-a` files, or stdin when there
//! is none. A source given with `:::+` or `::::+` is linked to the one before it: the two are
//! read side by side (the shorter wraps around) and form one group. Groups combine as a
//! cartesian product, the last varying fastest (as in GNU parallel).
//!
//! The first group, when it is a single source, is streamed: a job can start before the rest
//! of a long input has been read, and a 100,000-line input never sits in memory. Every other
//! group is read whole at start, since it is walked once per value of the first (or, when
//! linked, must be read side by side). `--bar`, `--eta` and `--halt N%` need the number of
//! jobs, so they read everything first ([`Inputs::count`]).
//!
//! With `--colsep`, each value is split into columns, and the columns of all sources make the
//! tuple: `{1}` is the first column of the first source.

use regex::bytes::Regex;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;

/// Where one input source's values come from.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// Values given on the command line after `:::`.
    Values(Vec<Vec<u8>>),
    /// Lines of a file given after `::::` or `-a` (`-` for stdin).
    File(PathBuf),
    /// Lines of stdin, when no source is given.
    Stdin,
}

/// One source, and whether it is linked to the previous one (`:::+`, `::::+`).
#[derive(Debug, Clone)]
pub struct Source {
    pub spec: SourceSpec,
    pub linked: bool,
}

type Lines = Box<dyn Iterator<Item = io::Result<Vec<u8>>> + Send>;

/// How a value is split into columns.
#[derive(Debug, Clone)]
pub enum Columns {
    /// `--colsep`: at each match of a regex.
    Regex(Regex),
    /// `--csv`: as a CSV record with this field separator: quoted fields may hold the
    /// separator, quotes (doubled) and even the record delimiter, so such records are read
    /// whole across lines.
    Csv(u8),
}

impl Columns {
    pub fn split(&self, value: &[u8]) -> Vec<Vec<u8>> {
        match self {
            Columns::Regex(re) => re.split(value).map(<[u8]>::to_vec).collect(),
            Columns::Csv(sep) => {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .delimiter(*sep)
                    .from_reader(value);
                let mut record = csv::ByteRecord::new();
                match reader.read_byte_record(&mut record) {
                    Ok(true) => record.iter().map(<[u8]>::to_vec).collect(),
                    // Nothing (or nothing CSV can read): the value is one column.
                    _ => vec![value.to_vec()],
                }
            }
        }
    }
}

/// `--csv`: joins lines while a record's quotes are open (an odd number of `"` so far), so a
/// quoted field holding the delimiter stays in its record.
struct CsvRecords {
    lines: Lines,
    delimiter: u8,
}

impl Iterator for CsvRecords {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut record = match self.lines.next()? {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        let quotes = |r: &[u8]| r.iter().filter(|&&b| b == b'"').count();
        while quotes(&record) % 2 == 1 {
            match self.lines.next() {
                Some(Ok(more)) => {
                    record.push(self.delimiter);
                    record.extend(more);
                }
                Some(Err(e)) => return Some(Err(e)),
                None => break,
            }
        }
        Some(Ok(record))
    }
}

/// An error reading input, naming the source.
#[derive(Debug)]
pub struct InputError(pub String);

/// The longest input record herd reads. No command line can hold more (Linux takes 128 KiB a
/// word, a few MiB in all), and a source with no delimiter at all (`:::: /dev/zero`) must not
/// grow herd without bound: a longer record ends the input with an error naming the source.
pub const MAX_RECORD: usize = 16 << 20;

/// Records ended by `delimiter`, each at most [`MAX_RECORD`] bytes.
struct Records<R> {
    reader: R,
    delimiter: u8,
}

impl<R: BufRead> Iterator for Records<R> {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut record = Vec::new();
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Some(Err(e)),
            };
            if buf.is_empty() {
                return (!record.is_empty()).then_some(Ok(record));
            }
            let (take, done) = match memchr::memchr(self.delimiter, buf) {
                Some(i) => (i, true),
                None => (buf.len(), false),
            };
            if record.len() + take > MAX_RECORD {
                return Some(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "an input record is longer than {} MiB (is the delimiter right?)",
                        MAX_RECORD >> 20
                    ),
                )));
            }
            record.extend_from_slice(&buf[..take]);
            self.reader.consume(take + usize::from(done));
            if done {
                return Some(Ok(record));
            }
        }
    }
}

fn lines_of(reader: impl BufRead + Send + 'static, delimiter: u8, csv: bool) -> Lines {
    let lines: Lines = Box::new(Records { reader, delimiter });
    if csv {
        Box::new(CsvRecords { lines, delimiter })
    } else {
        lines
    }
}

/// Standard input, after saying so when it is a terminal: typed at a prompt with no `:::`,
/// herd would otherwise seem to hang (GNU parallel warns likewise).
pub fn stdin_said(what: &str) -> io::Stdin {
    use std::io::IsTerminal;
    let stdin = io::stdin();
    if stdin.is_terminal() {
        let end = if cfg!(windows) {
            "Ctrl-Z, Enter"
        } else {
            "Ctrl-D"
        };
        eprintln!(
            "herd: reading {what} from the terminal; end it with {end}. (Values come after \
             :::, files after :::: or -a, or pipe them in; herd -h for a summary.)"
        );
    }
    stdin
}

fn open(spec: &SourceSpec, delimiter: u8, csv: bool) -> Result<Lines, InputError> {
    Ok(match spec {
        SourceSpec::Values(v) => Box::new(v.clone().into_iter().map(Ok)),
        SourceSpec::Stdin => lines_of(BufReader::new(stdin_said("inputs")), delimiter, csv),
        SourceSpec::File(p) if p.as_os_str() == "-" => {
            lines_of(BufReader::new(stdin_said("inputs")), delimiter, csv)
        }
        SourceSpec::File(p) => {
            let f = File::open(p)
                .map_err(|e| InputError(format!("cannot read input file {}: {e}", p.display())))?;
            if f.metadata().is_ok_and(|m| m.is_dir()) {
                return Err(InputError(format!(
                    "cannot read input file {}: it is a directory",
                    p.display()
                )));
            }
            lines_of(BufReader::with_capacity(64 * 1024, f), delimiter, csv)
        }
    })
}

fn describe(spec: &SourceSpec) -> String {
    match spec {
        SourceSpec::Values(_) => "arguments".into(),
        SourceSpec::Stdin => "standard input".into(),
        SourceSpec::File(p) => p.display().to_string(),
    }
}

fn read_all(spec: &SourceSpec, delimiter: u8, csv: bool) -> Result<Vec<Vec<u8>>, InputError> {
    open(spec, delimiter, csv)?
        .collect::<io::Result<_>>()
        .map_err(|e| InputError(format!("cannot read {}: {e}", describe(spec))))
}

/// Linked sources read whole: row `i` takes value `i` of each. With `wrap` (`--link`) the
/// shorter sources wrap around to the length of the longest; without (`:::+`), the rows stop
/// with the shortest.
fn linked_rows(sources: Vec<Vec<Vec<u8>>>, wrap: bool) -> Vec<Vec<Vec<u8>>> {
    if sources.iter().any(Vec::is_empty) {
        return Vec::new();
    }
    let lens = sources.iter().map(Vec::len);
    let len = if wrap { lens.max() } else { lens.min() }.unwrap_or(0);
    (0..len)
        .map(|i| sources.iter().map(|s| s[i % s.len()].clone()).collect())
        .collect()
}

/// The first group: streamed when it is one source, else read whole.
enum First {
    Streamed { lines: Lines, name: String },
    Rows(std::vec::IntoIter<Vec<Vec<u8>>>),
}

/// The stream of input tuples: one value per source (one per column with `--colsep`).
pub struct Inputs {
    first: First,
    /// The other groups, read whole: group → rows → one value per source of the group.
    rest: Vec<Vec<Vec<Vec<u8>>>>,
    current: Option<Vec<Vec<u8>>>,
    /// Odometer over `rest`.
    index: Vec<usize>,
    done: bool,
    colsep: Option<Columns>,
    /// Tuples read ahead by [`Inputs::count`].
    ahead: VecDeque<Vec<Vec<u8>>>,
}

/// Whether standard input is a regular file (reading it never waits).
fn stdin_is_file() -> bool {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map(File::from)
            .and_then(|f| f.metadata())
            .is_ok_and(|m| m.is_file())
    }
    #[cfg(not(unix))]
    {
        false
    }
}

impl Inputs {
    /// Whether reading these sources can never wait for ever: values and regular files can be
    /// read between events on the main thread; pipes and terminals need a thread of their own.
    pub fn never_block(sources: &[Source]) -> bool {
        sources.iter().all(|s| match &s.spec {
            SourceSpec::Values(_) => true,
            SourceSpec::Stdin => stdin_is_file(),
            SourceSpec::File(p) if p.as_os_str() == "-" => stdin_is_file(),
            SourceSpec::File(p) => std::fs::metadata(p).is_ok_and(|m| m.is_file()),
        })
    }

    /// Opens every source; reads all but a single first one whole. Errors name the source.
    /// With `link_all` (`--link`), every source is linked to the next, the shorter wrapping.
    pub fn open(
        sources: &[Source],
        delimiter: u8,
        colsep: Option<Columns>,
        link_all: bool,
    ) -> Result<Inputs, InputError> {
        let csv = matches!(colsep, Some(Columns::Csv(_)));
        let mut groups: Vec<Vec<&SourceSpec>> = Vec::new();
        for source in sources {
            match groups.last_mut() {
                Some(group) if source.linked || link_all => group.push(&source.spec),
                _ => groups.push(vec![&source.spec]),
            }
        }
        let mut groups = groups.into_iter();
        let first_group = groups.next().expect("at least one source");
        let first = if let [spec] = first_group[..] {
            First::Streamed {
                lines: open(spec, delimiter, csv)?,
                name: describe(spec),
            }
        } else {
            let values = first_group
                .iter()
                .map(|s| read_all(s, delimiter, csv))
                .collect::<Result<_, _>>()?;
            First::Rows(linked_rows(values, link_all).into_iter())
        };
        let mut rest = Vec::new();
        for group in groups {
            let values = group
                .iter()
                .map(|s| read_all(s, delimiter, csv))
                .collect::<Result<_, _>>()?;
            rest.push(linked_rows(values, link_all));
        }
        let done = rest.iter().any(Vec::is_empty);
        Ok(Inputs {
            first,
            index: vec![0; rest.len()],
            rest,
            current: None,
            done,
            colsep,
            ahead: VecDeque::new(),
        })
    }

    /// `--header`: takes the first value of every source, its header line, in source order.
    /// Must come before the first tuple is read.
    pub fn take_headers(&mut self) -> Result<Vec<Vec<u8>>, InputError> {
        let mut headers = self.next_first()?.unwrap_or_default();
        for group in &mut self.rest {
            if !group.is_empty() {
                headers.extend(group.remove(0));
            }
        }
        self.done = self.done || self.rest.iter().any(Vec::is_empty);
        Ok(headers)
    }

    /// Reads every remaining tuple ahead and returns how many remain.
    pub fn count(&mut self) -> Result<u64, InputError> {
        while let Some(t) = self.read_tuple()? {
            self.ahead.push_back(t);
        }
        Ok(self.ahead.len() as u64)
    }

    /// `--shuf`: reads every remaining tuple and puts them in random order.
    pub fn shuffle(&mut self) -> Result<(), InputError> {
        self.count()?;
        // xorshift, seeded from the clock: random enough to spread jobs, no dependency.
        let mut x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
            | 1;
        let ahead = self.ahead.make_contiguous();
        for i in (1..ahead.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ahead.swap(i, (x % (i as u64 + 1)) as usize);
        }
        Ok(())
    }

    /// The next tuple, or `None` at the end.
    pub fn next_tuple(&mut self) -> Result<Option<Vec<Vec<u8>>>, InputError> {
        match self.ahead.pop_front() {
            Some(t) => Ok(Some(t)),
            None => self.read_tuple(),
        }
    }

    fn next_first(&mut self) -> Result<Option<Vec<Vec<u8>>>, InputError> {
        match &mut self.first {
            First::Rows(rows) => Ok(rows.next()),
            First::Streamed { lines, name } => match lines.next() {
                None => Ok(None),
                Some(Err(e)) => Err(InputError(format!("cannot read {name}: {e}"))),
                Some(Ok(v)) => Ok(Some(vec![v])),
            },
        }
    }

    fn read_tuple(&mut self) -> Result<Option<Vec<Vec<u8>>>, InputError> {
        if self.done {
            return Ok(None);
        }
        if self.current.is_none() {
            match self.next_first()? {
                None => {
                    self.done = true;
                    return Ok(None);
                }
                Some(row) => self.current = Some(row),
            }
        }
        let mut tuple: Vec<Vec<u8>> = self.current.clone().unwrap();
        for (group, &i) in self.rest.iter().zip(&self.index) {
            tuple.extend(group[i].iter().cloned());
        }
        // Advance the odometer, last group fastest; when it wraps, take the next first row.
        let mut wrapped = true;
        for (pos, i) in self.index.iter_mut().enumerate().rev() {
            *i += 1;
            if *i < self.rest[pos].len() {
                wrapped = false;
                break;
            }
            *i = 0;
        }
        if wrapped {
            self.current = None;
        }
        if let Some(colsep) = &self.colsep {
            tuple = tuple.iter().flat_map(|v| colsep.split(v)).collect();
        }
        Ok(Some(tuple))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(v: &[&str]) -> Source {
        Source {
            spec: SourceSpec::Values(v.iter().map(|s| s.as_bytes().to_vec()).collect()),
            linked: false,
        }
    }

    fn linked(v: &[&str]) -> Source {
        Source {
            linked: true,
            ..values(v)
        }
    }

    fn all_with(specs: &[Source], colsep: Option<&str>) -> Vec<String> {
        let colsep = colsep.map(|c| Columns::Regex(Regex::new(c).unwrap()));
        let mut inputs = Inputs::open(specs, b'\n', colsep, false).unwrap();
        let mut out = Vec::new();
        while let Some(t) = inputs.next_tuple().unwrap() {
            out.push(
                t.iter()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        out
    }

    fn all(specs: &[Source]) -> Vec<String> {
        all_with(specs, None)
    }

    #[test]
    fn product_varies_last_fastest() {
        assert_eq!(
            all(&[values(&["a", "b"]), values(&["1", "2", "3"])]),
            ["a,1", "a,2", "a,3", "b,1", "b,2", "b,3"]
        );
        assert_eq!(
            all(&[values(&["a"]), values(&["1", "2"]), values(&["x", "y"])]),
            ["a,1,x", "a,1,y", "a,2,x", "a,2,y"]
        );
        assert_eq!(all(&[values(&["a", "b"])]), ["a", "b"]);
        assert!(all(&[values(&["a", "b"]), values(&[])]).is_empty());
    }

    #[test]
    fn linked_sources_go_side_by_side_and_stop_with_the_shorter() {
        assert_eq!(
            all(&[values(&["a", "b", "c"]), linked(&["1", "2", "3"])]),
            ["a,1", "b,2", "c,3"]
        );
        assert_eq!(all(&[values(&["a", "b", "c"]), linked(&["1"])]), ["a,1"]);
        // --link: the shorter wraps around.
        let mut inputs = Inputs::open(
            &[values(&["a", "b", "c"]), values(&["1", "2"])],
            b'\n',
            None,
            true,
        )
        .unwrap();
        let mut rows = Vec::new();
        while let Some(t) = inputs.next_tuple().unwrap() {
            rows.push(String::from_utf8(t.concat()).unwrap());
        }
        assert_eq!(rows, ["a1", "b2", "c1"]);
        // Linked pairs, then a product with a third source.
        assert_eq!(
            all(&[
                values(&["x", "y"]),
                values(&["a", "b"]),
                linked(&["1", "2"])
            ]),
            ["x,a,1", "x,b,2", "y,a,1", "y,b,2"]
        );
        assert!(all(&[values(&["a"]), linked(&[])]).is_empty());
    }

    #[test]
    fn columns_become_values() {
        assert_eq!(
            all_with(&[values(&["a,b", "c,,d"]), values(&["x y"])], Some("[, ]")),
            ["a,b,x,y", "c,,d,x,y"]
        );
    }

    #[test]
    fn counting_reads_ahead_without_losing_a_tuple() {
        let mut inputs = Inputs::open(
            &[values(&["a", "b"]), values(&["1", "2"])],
            b'\n',
            None,
            false,
        )
        .unwrap();
        assert_eq!(inputs.next_tuple().unwrap().unwrap(), [b"a", b"1"]);
        assert_eq!(inputs.count().unwrap(), 3);
        let mut rest = Vec::new();
        while let Some(t) = inputs.next_tuple().unwrap() {
            rest.push(t);
        }
        assert_eq!(rest.len(), 3);
    }

    #[test]
    fn missing_file_names_it() {
        let missing = Source {
            spec: SourceSpec::File("/nonexistent/herd-input".into()),
            linked: false,
        };
        let Err(e) = Inputs::open(&[missing], b'\n', None, false) else {
            panic!()
        };
        assert!(e.0.contains("/nonexistent/herd-input"), "{}", e.0);
    }
}
