//! The project documents itself: nothing in the repository cites a design
//! file outside it, every error and reason code the crate defines is
//! explained in docs/errors.md, and every link to a `docs/` file (and to a
//! section of one) leads somewhere.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The repository's root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The text files under `dir` (recursively; build output, the fuzz
/// corpus and anything that is not UTF-8 skipped), or `dir` itself when it
/// is a file.
fn text_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if matches!(name, "target" | "corpus" | "artifacts" | ".git") {
                continue;
            }
            let entries = fs::read_dir(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for entry in entries {
                pending.push(entry.expect("a directory entry").path());
            }
        } else if let Ok(text) = fs::read_to_string(&path) {
            found.push((path, text));
        }
    }
    found.sort();
    found
}

/// Every text file the repository's citations may live in.
fn repository_files() -> Vec<(PathBuf, String)> {
    [
        "README.md",
        "BENCHMARKS.md",
        "RELIABILITY.md",
        "Cargo.toml",
        "build.rs",
        "src",
        "tests",
        "examples",
        "benches",
        "docs",
        "fuzz",
        "ffi",
        ".ci",
    ]
    .iter()
    .map(|part| root().join(part))
    .filter(|path| path.exists())
    .flat_map(|path| text_files(&path))
    .collect()
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Lines of `text` where the design file's name, in capitals, is followed
/// by a citation: `.md`, `section`, `§` or a section number.
fn design_citations(text: &str) -> Vec<(usize, String)> {
    // Spelt in two pieces so that this file does not cite it itself.
    let word = ["DES", "IGN"].concat();
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for (at, _) in line.match_indices(&word) {
            let before = line[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let after = line[at + word.len()..].trim_start();
            let next = line.as_bytes().get(at + word.len()).copied();
            let cites = next == Some(b'.')
                || after.starts_with("section")
                || after.starts_with('§')
                || after.starts_with(|c: char| c.is_ascii_digit())
                // Wrapped before its section: the citation goes on.
                || (after.is_empty() && next != Some(b'_'));
            if cites {
                found.push((i + 1, line.trim().to_owned()));
            }
        }
    }
    found
}

#[test]
fn a_citation_of_a_design_file_is_found_wherever_it_is_written() {
    let word = ["DES", "IGN"].concat();
    for cited in [
        format!("see {word}.md"),
        format!("(the contract, {word} section 9)"),
        format!("({word} §4)"),
        format!("### One address ({word} 11.1)"),
        format!("wrapped (the {word}\n//! section 10)"),
    ] {
        assert!(!design_citations(&cited).is_empty(), "{cited:?}");
    }
    for fine in [
        "a designer's notes".to_owned(),
        format!("{word}ER"),
        format!("NOT_{word}ED"),
        "the design lives in docs/".to_owned(),
    ] {
        assert!(design_citations(&fine).is_empty(), "{fine:?}");
    }
}

#[test]
fn nothing_in_the_repository_cites_a_design_file_outside_it() {
    let mut citations = Vec::new();
    for (path, text) in repository_files() {
        for (line, excerpt) in design_citations(&text) {
            citations.push(format!("{}:{line}: {excerpt}", relative(&path)));
        }
    }
    assert!(
        citations.is_empty(),
        "these cite a file outside the repository; cite the docs/ file that says the same \
         (docs/formats.md, docs/semantics.md, docs/errors.md, docs/cli.md, docs/http.md):\n{}",
        citations.join("\n")
    );
}

/// The string literals of the function that starts at `signature` in
/// `file` (up to its closing brace at the same indentation) that look like
/// codes: SCREAMING_SNAKE_CASE.
fn codes_in_function(file: &str, signature: &str) -> BTreeSet<String> {
    let text = fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let start = text
        .find(signature)
        .unwrap_or_else(|| panic!("{file} no longer has `{signature}`: update this test"));
    let indent = text[..start]
        .rsplit('\n')
        .next()
        .map_or(0, |line| line.len() - line.trim_start().len());
    let end_marker = format!("\n{}}}\n", " ".repeat(indent));
    let body = &text[start..];
    let body = &body[..body.find(&end_marker).unwrap_or(body.len())];
    codes_in(body)
}

/// The string literals of `text` that look like codes.
fn codes_in(text: &str) -> BTreeSet<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .filter(|literal| {
            literal.len() >= 2
                && literal.contains(|c: char| c.is_ascii_uppercase())
                && literal
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

/// The codes docs/errors.md explains: the first cell of a table row,
/// `` | `CODE` | ``.
fn documented_codes() -> BTreeSet<String> {
    let text = fs::read_to_string(root().join("docs/errors.md")).expect("docs/errors.md");
    text.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once("` |"))
        .map(|(code, _)| code.to_owned())
        .collect()
}

#[test]
fn every_error_and_reason_code_is_explained_in_docs_errors_md() {
    let reasons = codes_in_function("src/decision.rs", "pub const fn code(self)");
    let errors = codes_in_function("src/error.rs", "pub fn code(&self)");
    let warnings = codes_in_function("src/license/issue.rs", "pub const fn code(&self)");
    // What the server answers besides the engine's codes: the code of
    // each `ApiError::new(status, "CODE", message)`.
    let api: String = ["api.rs", "admin.rs", "history.rs"]
        .iter()
        .map(|file| {
            fs::read_to_string(root().join("src/server").join(file))
                .unwrap_or_else(|e| panic!("src/server/{file}: {e}"))
        })
        .collect();
    let server: BTreeSet<String> = api
        .split("ApiError::new(")
        .skip(1)
        .filter_map(|call| call.split_once(',').map(|(_, rest)| rest))
        .filter_map(|rest| rest.split('"').nth(1))
        .flat_map(|literal| codes_in(&format!("\"{literal}\"")))
        .collect();

    // The reading above finds what the crate really says.
    for reason in [
        entitle::Reason::Ok,
        entitle::Reason::NotLicensed,
        entitle::Reason::ClockTampered,
        entitle::Reason::LeaseBorrowed,
    ] {
        assert!(
            reasons.contains(reason.code()),
            "{reason} not read from src/decision.rs"
        );
    }
    assert!(reasons.len() >= 27, "only {} reasons read", reasons.len());
    for error in [
        entitle::Error::SignatureInvalid,
        entitle::Error::LicenseNotFound { id: "lic_1".into() },
        entitle::Error::StateMissing { path: "x".into() },
        entitle::Error::InvalidArgument("x".into()),
    ] {
        assert!(
            errors.contains(error.code()),
            "{} not read from src/error.rs",
            error.code()
        );
    }
    assert!(warnings.contains("PERPETUAL_WITH_EXPIRY"));
    assert!(server.contains("UNAUTHORIZED") && server.contains("QUEUE_FULL"));

    let documented = documented_codes();
    let missing: Vec<_> = reasons
        .iter()
        .chain(&errors)
        .chain(&warnings)
        .chain(&server)
        .filter(|code| !documented.contains(*code))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/errors.md does not explain {missing:?}: add a row `| `CODE` | ... |` saying \
         what it means and what the user should do"
    );
    // And the codes this issue adds, whichever branch brings their code.
    for code in [
        "LEASE_KEY_MISMATCH",
        "SERVER_UNREACHABLE",
        "VERSION_NOT_LICENSED",
    ] {
        assert!(
            documented.contains(code),
            "docs/errors.md does not explain {code}"
        );
    }
}

/// The anchors GitHub gives the headings of a markdown text: lower case,
/// punctuation dropped, spaces as hyphens.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut found = BTreeSet::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code || !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#').trim();
        let anchor: String = heading
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        found.insert(anchor);
    }
    found
}

/// Whether `target` (`file.md`, `file.md#anchor` or `#anchor`, relative to
/// `base`) names an existing file and heading; the reason when not.
fn broken(base: &Path, target: &str) -> Option<String> {
    let (file, anchor) = match target.split_once('#') {
        Some((file, anchor)) => (file, Some(anchor)),
        None => (target, None),
    };
    let path = base.join(file);
    let Ok(text) = fs::read_to_string(&path) else {
        return Some(format!("no file {}", relative(&path)));
    };
    match anchor {
        Some(anchor) if path.extension().is_some_and(|e| e == "md") => (!anchors(&text)
            .contains(anchor))
        .then(|| format!("no heading #{anchor} in {}", relative(&path))),
        _ => None,
    }
}

/// The citations of a docs file (with its section, if named) in `text`.
fn docs_citations(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("docs/") {
        if text[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[at..];
        let end = rest
            .find(|c: char| {
                !(c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '#'))
            })
            .unwrap_or(rest.len());
        let cited = rest[..end].trim_end_matches('.');
        let file = cited.split('#').next().unwrap_or(cited);
        if file.ends_with(".md") {
            found.push(cited.to_owned());
        }
    }
    found
}

#[test]
fn every_citation_of_a_docs_file_leads_to_it() {
    let mut broken_links = Vec::new();
    let mut seen = 0;
    for (path, text) in repository_files() {
        for cited in docs_citations(&text) {
            seen += 1;
            if let Some(why) = broken(&root(), &cited) {
                broken_links.push(format!("{}: {cited}: {why}", relative(&path)));
            }
        }
    }
    assert!(
        seen > 50,
        "only {seen} citations of docs/ found: is the scan broken?"
    );
    assert!(broken_links.is_empty(), "{}", broken_links.join("\n"));
}

#[test]
fn the_links_inside_docs_lead_somewhere() {
    let docs = root().join("docs");
    let mut broken_links = Vec::new();
    for (path, text) in text_files(&docs) {
        for (at, _) in text.match_indices("](") {
            let rest = &text[at + 2..];
            let target = &rest[..rest.find(')').unwrap_or(rest.len())];
            if target.contains("://") {
                continue;
            }
            let target = if let Some(anchor) = target.strip_prefix('#') {
                format!("{}#{anchor}", path.file_name().unwrap().to_string_lossy())
            } else {
                target.to_owned()
            };
            if let Some(why) = broken(&docs, &target) {
                broken_links.push(format!("{}: {target}: {why}", relative(&path)));
            }
        }
    }
    assert!(broken_links.is_empty(), "{}", broken_links.join("\n"));
}

#[test]
fn a_broken_citation_is_caught() {
    assert_eq!(
        docs_citations("see docs/formats.md#keys, docs/cli.md. and mydocs/x.md"),
        ["docs/formats.md#keys", "docs/cli.md"]
    );
    assert!(broken(&root(), "docs/formats.md#keys").is_none());
    // Spelt in pieces so that the scan of this file does not find them.
    assert!(broken(&root(), &["docs/formats.md", "#no-such-heading"].concat()).is_some());
    assert!(broken(&root(), &["docs/", "missing.md"].concat()).is_some());
    assert!(
        anchors("## License (`typ: \"license\"`)\n## The vendor's books").is_superset(
            &BTreeSet::from(["license-typ-license".into(), "the-vendors-books".into()])
        )
    );
}
