//! Input sources and their combination.
//!
//! Sources are `:::` value lists, `::::` files (`-` is stdin), or stdin when there is neither.
//! Several sources combine as a cartesian product, the last varying fastest (as in GNU
//! parallel). The first source is streamed: a job can start before the rest of a long input
//! has been read, and a 100,000-line input never sits in memory. The other sources of a
//! product are read whole at start, since they are walked once per value of the first.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;

/// Where one input source's values come from.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// Values given on the command line after `:::`.
    Values(Vec<Vec<u8>>),
    /// Lines of a file given after `::::` (`-` for stdin).
    File(PathBuf),
    /// Lines of stdin, when no source is given.
    Stdin,
}

type Lines = Box<dyn Iterator<Item = io::Result<Vec<u8>>> + Send>;

/// An error reading input, naming the source.
#[derive(Debug)]
pub struct InputError(pub String);

fn lines_of(reader: impl BufRead + Send + 'static, delimiter: u8) -> Lines {
    Box::new(reader.split(delimiter))
}

fn open(spec: &SourceSpec, delimiter: u8) -> Result<Lines, InputError> {
    Ok(match spec {
        SourceSpec::Values(v) => Box::new(v.clone().into_iter().map(Ok)),
        SourceSpec::Stdin => lines_of(BufReader::new(io::stdin()), delimiter),
        SourceSpec::File(p) if p.as_os_str() == "-" => {
            lines_of(BufReader::new(io::stdin()), delimiter)
        }
        SourceSpec::File(p) => {
            let f = File::open(p)
                .map_err(|e| InputError(format!("cannot read input file {}: {e}", p.display())))?;
            lines_of(BufReader::with_capacity(64 * 1024, f), delimiter)
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

/// The stream of input tuples: one value per source.
pub struct Inputs {
    first: Lines,
    first_name: String,
    rest: Vec<Vec<Vec<u8>>>,
    current: Option<Vec<u8>>,
    /// Odometer over `rest`.
    index: Vec<usize>,
    done: bool,
}

impl Inputs {
    /// Opens every source; reads all but the first whole. Errors name the source.
    pub fn open(specs: &[SourceSpec], delimiter: u8) -> Result<Inputs, InputError> {
        let first = open(&specs[0], delimiter)?;
        let mut rest = Vec::new();
        for spec in &specs[1..] {
            let values: Vec<Vec<u8>> = open(spec, delimiter)?
                .collect::<io::Result<_>>()
                .map_err(|e| InputError(format!("cannot read {}: {e}", describe(spec))))?;
            rest.push(values);
        }
        let done = rest.iter().any(Vec::is_empty);
        Ok(Inputs {
            first,
            first_name: describe(&specs[0]),
            index: vec![0; rest.len()],
            rest,
            current: None,
            done,
        })
    }

    /// The next tuple, or `None` at the end.
    pub fn next_tuple(&mut self) -> Result<Option<Vec<Vec<u8>>>, InputError> {
        if self.done {
            return Ok(None);
        }
        if self.current.is_none() {
            match self.first.next() {
                None => {
                    self.done = true;
                    return Ok(None);
                }
                Some(Err(e)) => {
                    return Err(InputError(format!("cannot read {}: {e}", self.first_name)))
                }
                Some(Ok(v)) => self.current = Some(v),
            }
        }
        let mut tuple = Vec::with_capacity(1 + self.rest.len());
        tuple.push(self.current.clone().unwrap());
        for (source, &i) in self.rest.iter().zip(&self.index) {
            tuple.push(source[i].clone());
        }
        // Advance the odometer, last source fastest; when it wraps, take the next first value.
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
        Ok(Some(tuple))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(v: &[&str]) -> SourceSpec {
        SourceSpec::Values(v.iter().map(|s| s.as_bytes().to_vec()).collect())
    }

    fn all(specs: &[SourceSpec]) -> Vec<String> {
        let mut inputs = Inputs::open(specs, b'\n').unwrap();
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
    fn missing_file_names_it() {
        let Err(e) = Inputs::open(&[SourceSpec::File("/nonexistent/herd-input".into())], b'\n')
        else {
            panic!()
        };
        assert!(e.0.contains("/nonexistent/herd-input"), "{}", e.0);
    }
}
