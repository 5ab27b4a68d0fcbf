//! How large and how deeply nested a user's YAML file (a scenario or a game day) may be,
//! checked before the YAML is deserialized or indexed: libyaml's scanner spends time
//! quadratic in the nesting depth of flow collections (`[[[[…]]]]`), so depth is refused
//! first, reading no more of the file than the limit. Never interprets the file's content.

use std::io::Read;
use std::path::Path;

use super::span::nested_deeper_than;

/// Largest file read, 1 MiB: a drill or game-day file is a few KiB.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// Deepest nesting of maps and lists (the document's top-level map is level 1). Scenario files
/// use 6 levels; `yaml_serde` refuses more than 128 anyway, but only after reading everything.
pub const MAX_NESTING: usize = 64;

/// Why a file was refused: where (line 0 when the file as a whole), what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

fn too_large(what: &str) -> Refusal {
    Refusal {
        line: 0,
        column: 0,
        message: format!(
            "the {what} is larger than {MAX_FILE_BYTES} bytes (1 MiB), the most pgdrill reads"
        ),
        hint: Some("a scenario or game-day file is a few KiB: is this the right file?".into()),
    }
}

/// Reads the file at `path` as UTF-8, refusing one larger than [`MAX_FILE_BYTES`] without
/// reading more than that. `what` names the file in messages (`scenario file`).
pub fn read_bounded(path: &Path, what: &str) -> Result<String, Refusal> {
    let unreadable = |e: std::io::Error| Refusal {
        line: 0,
        column: 0,
        message: format!("cannot read the {what}: {e}"),
        hint: None,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(unreadable)?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(too_large(what));
    }
    String::from_utf8(bytes).map_err(|_| {
        unreadable(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })
}

/// Refuses `text` when it is larger than [`MAX_FILE_BYTES`] or nests maps and lists deeper
/// than [`MAX_NESTING`]; the latter located at the first collection too deep.
pub fn check(text: &str, what: &str) -> Result<(), Refusal> {
    if text.len() > MAX_FILE_BYTES {
        return Err(too_large(what));
    }
    match nested_deeper_than(text, MAX_NESTING) {
        None => Ok(()),
        Some(at) => Err(Refusal {
            line: at.line,
            column: at.column,
            message: format!("maps and lists are nested more than {MAX_NESTING} levels deep here"),
            hint: Some(
                "a scenario or game-day file nests a few levels: look for repeated or unclosed `[` and `{`"
                    .into(),
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("name: {}{}\n", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn nesting_up_to_the_limit_passes_and_beyond_it_is_located() {
        // The top-level map is level 1, so `name`'s value may open MAX_NESTING - 1 lists.
        check(&nested(MAX_NESTING - 1), "scenario file").expect("at the limit");
        let e = check(&nested(MAX_NESTING), "scenario file").expect_err("one level too deep");
        assert_eq!((e.line, e.column), (1, 7 + MAX_NESTING - 1), "{e:?}");
        assert_eq!(
            e.message,
            "maps and lists are nested more than 64 levels deep here"
        );
        let block = (0..MAX_NESTING + 1).fold(String::new(), |text, level| {
            format!("{text}{}k{level}:\n", "  ".repeat(level))
        }) + &"  ".repeat(MAX_NESTING + 1)
            + "x\n";
        let e = check(&block, "game-day file").expect_err("block nesting");
        assert_eq!(e.line, MAX_NESTING + 1, "{e:?}");
    }

    #[test]
    fn a_syntax_error_is_left_to_the_loader_and_size_is_bounded() {
        check("name: [x\n", "scenario file").expect("not this check's");
        let big = format!("name: x\ndescription: {}\n", "a".repeat(MAX_FILE_BYTES));
        let e = check(&big, "scenario file").expect_err("too large");
        assert_eq!(e.line, 0);
        assert!(e.message.contains("larger than 1048576 bytes"), "{e:?}");

        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("big.yaml");
        std::fs::write(&f, &big).unwrap();
        let e = read_bounded(&f, "scenario file").expect_err("too large");
        assert!(e.message.contains("scenario file is larger"), "{e:?}");
        std::fs::write(&f, b"name: \xff\n").unwrap();
        let e = read_bounded(&f, "scenario file").expect_err("not UTF-8");
        assert!(e.message.contains("valid UTF-8"), "{e:?}");
        std::fs::write(&f, "name: ok\n").unwrap();
        assert_eq!(read_bounded(&f, "scenario file").unwrap(), "name: ok\n");
    }
}
