//! The reference documents stay true to the code: every error code the code can produce is
//! listed in `docs/ERRORS.md`, every event type in `docs/EVENTS.md`.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sources(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.ends_with("tests") {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            // Whitespace folded, so a call split over lines reads as one.
            let text = std::fs::read_to_string(&path).unwrap();
            out.push(text.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
}

/// The quoted snake_case literal at the start of `s`, if any.
fn literal(s: &str) -> Option<&str> {
    let rest = s.trim_start().strip_prefix('"')?;
    let end = rest.find('"')?;
    let word = &rest[..end];
    word.bytes()
        .all(|b| b.is_ascii_lowercase() || b == b'_')
        .then_some(word)
}

/// Codes written as `ErrorKind::X, "code"` and `FieldError::new(pointer, "code", …)`.
fn codes_in(source: &str) -> Vec<String> {
    let mut codes = Vec::new();
    for (i, _) in source.match_indices("ErrorKind::") {
        let after = &source[i..];
        if let Some(comma) = after.find(',').filter(|c| *c < 40) {
            codes.extend(literal(&after[comma + 1..]).map(str::to_owned));
        }
    }
    for (i, _) in source.match_indices("FieldError::new(") {
        let after = &source[i + "FieldError::new(".len()..];
        if let Some(comma) = after.find(", ") {
            codes.extend(literal(&after[comma + 1..]).map(str::to_owned));
        }
    }
    for (i, _) in source.match_indices("with_status(") {
        let after = &source[i..];
        if let Some(comma) = after.find(", ") {
            codes.extend(literal(&after[comma + 1..]).map(str::to_owned));
        }
    }
    codes
}

#[test]
fn every_error_code_is_documented() {
    let root = workspace();
    let mut files = Vec::new();
    sources(&root.join("crates"), &mut files);
    let mut codes: Vec<String> = files.iter().flat_map(|f| codes_in(f)).collect();
    // Codes chosen by serde's messages in the JSON extractor, and the token endpoint's RFC 6749 codes.
    codes.extend(
        [
            "required",
            "unknown_field",
            "invalid_type",
            "invalid_value",
            "invalid_format",
            "validation_failed",
            "invalid_request",
            "invalid_client",
            "invalid_grant",
            "unsupported_grant_type",
            "invalid_scope",
        ]
        .map(str::to_owned),
    );
    codes.sort();
    codes.dedup();
    assert!(codes.len() > 25, "the scan found too few codes: {codes:?}");
    let doc = std::fs::read_to_string(root.join("docs/ERRORS.md")).unwrap();
    let missing: Vec<&String> = codes
        .iter()
        .filter(|c| !doc.contains(&format!("| `{c}` |")))
        .collect();
    assert!(missing.is_empty(), "docs/ERRORS.md lacks {missing:?}");
}

#[test]
fn every_event_type_is_documented() {
    let root = workspace();
    let mut files = Vec::new();
    sources(&root.join("crates"), &mut files);
    let doc = std::fs::read_to_string(root.join("docs/EVENTS.md")).unwrap();
    let mut found = 0;
    for file in &files {
        // Types declared through a macro (`const TYPE: &'static str = $type;`) are the
        // macro's arguments: lines holding only a quoted `aggregate.event` literal.
        if file.contains("const TYPE: &'static str = $") {
            for line in file.lines().map(str::trim) {
                let Some(name) = line.strip_prefix('"').and_then(|l| l.strip_suffix('"')) else {
                    continue;
                };
                if name.contains('.')
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.')
                {
                    assert!(
                        doc.contains(&format!("`{name}`")),
                        "docs/EVENTS.md lacks {name}"
                    );
                    found += 1;
                }
            }
        }
        for (i, _) in file.match_indices("const TYPE: &'static str = ") {
            if file[i..].starts_with("const TYPE: &'static str = $") {
                continue;
            }
            let ty = literal(&file[i + "const TYPE: &'static str = ".len()..].replace('.', "_"))
                .map(|t| t.to_owned());
            let start = i + "const TYPE: &'static str = \"".len();
            let name = &file[start..start + file[start..].find('"').unwrap()];
            assert!(ty.is_some(), "odd event type {name}");
            assert!(
                doc.contains(&format!("`{name}`")),
                "docs/EVENTS.md lacks {name}"
            );
            found += 1;
        }
    }
    assert!(found >= 6, "the scan found {found} event types");
}
