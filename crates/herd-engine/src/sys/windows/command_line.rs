//! Building a command line that the MSVC runtime (`CommandLineToArgvW`) splits back into
//! exactly the arguments given.

use std::ffi::OsStr;
use std::os::windows::ffi::OsStrExt;

fn push_quoted(out: &mut Vec<u16>, arg: &OsStr) {
    let units: Vec<u16> = arg.encode_wide().collect();
    let needs_quotes = units.is_empty()
        || units.iter().any(|&c| {
            c == b' ' as u16 || c == b'\t' as u16 || c == b'\n' as u16 || c == b'"' as u16
        });
    if !needs_quotes {
        out.extend_from_slice(&units);
        return;
    }
    out.push(b'"' as u16);
    let mut backslashes = 0;
    for &c in &units {
        if c == b'\\' as u16 {
            backslashes += 1;
            continue;
        }
        if c == b'"' as u16 {
            // Backslashes before a quote are doubled, and the quote escaped.
            out.extend(std::iter::repeat_n(b'\\' as u16, backslashes * 2 + 1));
        } else {
            out.extend(std::iter::repeat_n(b'\\' as u16, backslashes));
        }
        backslashes = 0;
        out.push(c);
    }
    // Backslashes before the closing quote are doubled.
    out.extend(std::iter::repeat_n(b'\\' as u16, backslashes * 2));
    out.push(b'"' as u16);
}

/// The program and its arguments as one NUL-terminated UTF-16 command line; the arguments
/// whose index is in `raw` go in verbatim.
pub(crate) fn make(program: &OsStr, args: &[std::ffi::OsString], raw: &[usize]) -> Vec<u16> {
    let mut out = Vec::new();
    push_quoted(&mut out, program);
    for (i, arg) in args.iter().enumerate() {
        out.push(b' ' as u16);
        if raw.contains(&i) {
            out.extend(arg.encode_wide());
        } else {
            push_quoted(&mut out, arg);
        }
    }
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::make;

    fn line(args: &[&str]) -> String {
        let args: Vec<std::ffi::OsString> = args[1..].iter().map(|a| a.into()).collect();
        let mut v = make(args_program(args.len()), &args, &[]);
        v.pop();
        String::from_utf16(&v).unwrap()
    }

    fn args_program(_: usize) -> &'static std::ffi::OsStr {
        std::ffi::OsStr::new("prog")
    }

    #[test]
    fn quoting_follows_the_msvc_rules() {
        assert_eq!(
            line(&["prog", "plain", "two words", ""]),
            r#"prog plain "two words" """#
        );
        assert_eq!(line(&["prog", r#"say "hi""#]), r#"prog "say \"hi\"""#);
        assert_eq!(line(&["prog", r"C:\dir\", r"a\\b"]), r#"prog C:\dir\ a\\b"#);
        assert_eq!(line(&["prog", r"with space\"]), r#"prog "with space\\""#);
        assert_eq!(line(&["prog", r#"a\"b"#]), r#"prog "a\\\"b""#);
    }

    #[test]
    fn raw_arguments_go_in_verbatim() {
        let args: Vec<std::ffi::OsString> = vec!["/c".into(), r#""echo "hi" & ver""#.into()];
        let mut v = make(std::ffi::OsStr::new("cmd"), &args, &[1]);
        v.pop();
        assert_eq!(
            String::from_utf16(&v).unwrap(),
            r#"cmd /c "echo "hi" & ver""#
        );
    }
}
