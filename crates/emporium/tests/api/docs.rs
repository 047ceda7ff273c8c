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

/// The OpenAPI document as `emporium openapi` prints it.
fn openapi_document() -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_emporium"))
        .arg("openapi")
        .env_remove("EMPORIUM_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "emporium openapi failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Every operation of the document as (method, path, operation).
fn operations(doc: &serde_json::Value) -> Vec<(String, String, serde_json::Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                ops.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    assert!(
        ops.len() > 80,
        "the document has only {} operations",
        ops.len()
    );
    ops
}

fn collect_refs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", serde_json::Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_command_prints_the_document_the_server_serves() {
    let app = crate::helpers::TestApp::spawn().await;
    let served: serde_json::Value = app.get("/openapi.json", None).await.json().await.unwrap();
    assert_eq!(openapi_document(), served);
}

#[test]
fn every_reference_in_the_openapi_document_resolves() {
    let doc = openapi_document();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    let dangling: Vec<&String> = refs
        .iter()
        .filter(|r| {
            let Some(pointer) = r.strip_prefix('#') else {
                return true;
            };
            doc.pointer(pointer).is_none()
        })
        .collect();
    assert!(dangling.is_empty(), "dangling references: {dangling:?}");
}

#[test]
fn operation_ids_are_unique_readable_camel_case() {
    let doc = openapi_document();
    let mut seen = std::collections::HashMap::new();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap_or_default().to_owned();
        // A verb and at least one noun: `listStoreProducts`, not `list` or `list_products`.
        let camel = id.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && id.bytes().all(|b| b.is_ascii_alphanumeric())
            && id.bytes().any(|b| b.is_ascii_uppercase());
        assert!(camel, "{method} {path} has operationId {id:?}");
        if let Some(other) = seen.insert(id.clone(), format!("{method} {path}")) {
            panic!("operationId {id} names both {other} and {method} {path}");
        }
    }
}

/// The schema name of each type deriving `ToSchema` (its `#[schema(as = …)]` name or its own),
/// with the file declaring it.
fn schema_names(file: &str, path: &str, out: &mut Vec<(String, String)>) {
    for (i, _) in file.match_indices("ToSchema") {
        // Only derives: the `ToSchema` must sit in a `#[derive(…)]` just before.
        let Some(derive) = file[..i].rfind("#[derive(") else {
            continue;
        };
        if file[derive..i].contains(']') {
            continue;
        }
        let rest = &file[i..];
        let Some(decl) = [" struct ", " enum "]
            .iter()
            .filter_map(|k| rest.find(k).map(|at| (at, k.len())))
            .min()
        else {
            continue;
        };
        let attributes = &rest[..decl.0];
        let ident: String = rest[decl.0 + decl.1..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let renamed = attributes.find("as = ").map(|at| {
            attributes[at + "as = ".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect::<String>()
                .rsplit("::")
                .next()
                .unwrap_or_default()
                .to_owned()
        });
        out.push((renamed.unwrap_or(ident), path.to_owned()));
    }
}

#[test]
fn no_two_types_share_a_schema_name() {
    fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.ends_with("tests") {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
                schema_names(&folded, &path.display().to_string(), out);
            }
        }
    }
    let mut names = Vec::new();
    walk(&workspace().join("crates"), &mut names);
    assert!(
        names.len() > 80,
        "the scan found {} schema types",
        names.len()
    );
    names.sort();
    let clashes: Vec<_> = names
        .windows(2)
        .filter(|w| w[0].0 == w[1].0)
        .map(|w| format!("{} in {} and {}", w[0].0, w[0].1, w[1].1))
        .collect();
    assert!(
        clashes.is_empty(),
        "one schema name, two types (utoipa keeps one): {clashes:?}"
    );
}

/// Whether `schema` is an object with nothing said of its fields.
fn untyped_object(schema: &serde_json::Value) -> bool {
    schema["type"] == "object"
        && [
            "properties",
            "additionalProperties",
            "$ref",
            "allOf",
            "oneOf",
            "anyOf",
        ]
        .iter()
        .all(|key| schema.get(key).is_none())
}

/// A client generated from the document gets the fields of every JSON answer: none is a bare
/// `object`, nor a list of them.
#[test]
fn every_json_success_answer_has_a_typed_schema() {
    let doc = openapi_document();
    for (method, path, op) in operations(&doc) {
        for (status, response) in op["responses"].as_object().unwrap() {
            let schema = &response["content"]["application/json"]["schema"];
            if !status.starts_with('2') || schema.is_null() {
                continue;
            }
            assert!(
                !untyped_object(schema) && !untyped_object(&schema["items"]),
                "{method} {path} {status} answers an untyped object: {schema}"
            );
        }
    }
}

/// The health, readiness and key-set answers name their schemas, whose fields are required,
/// and the server answers what they say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ops_and_key_set_answers_have_schemas_with_required_fields() {
    let doc = openapi_document();
    let app = crate::helpers::TestApp::spawn().await;
    let required = |name: &str| -> Vec<String> {
        let schema = &doc["components"]["schemas"][name];
        assert!(schema.is_object(), "no schema {name}");
        let mut fields: Vec<String> = schema["required"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|f| f.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        fields.sort();
        fields
    };
    for (path, name, fields) in [
        ("/healthz", "Health", vec!["status"]),
        ("/readyz", "Readiness", vec!["status"]),
        ("/.well-known/jwks.json", "Jwks", vec!["keys"]),
    ] {
        let schema =
            &doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        assert_eq!(
            schema["$ref"],
            format!("#/components/schemas/{name}"),
            "{path}"
        );
        assert_eq!(required(name), fields, "{name}");
        let body: serde_json::Value = app.get(path, None).await.json().await.unwrap();
        let mut sent: Vec<&String> = body.as_object().unwrap().keys().collect();
        sent.sort();
        assert_eq!(sent, fields.iter().collect::<Vec<_>>(), "{path}: {body}");
    }
    assert_eq!(
        doc["components"]["schemas"]["Alive"]["enum"],
        serde_json::json!(["ok"])
    );
    assert_eq!(
        doc["components"]["schemas"]["Ready"]["enum"],
        serde_json::json!(["ready"])
    );
    assert_eq!(
        required("Jwk"),
        vec!["alg", "crv", "kid", "kty", "use", "x"]
    );
    let keys: serde_json::Value = app
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    let mut sent: Vec<&String> = keys["keys"][0].as_object().unwrap().keys().collect();
    sent.sort();
    assert_eq!(sent, vec!["alg", "crv", "kid", "kty", "use", "x"]);
}

#[test]
fn every_operation_has_a_client_error_answered_as_a_problem() {
    let doc = openapi_document();
    for (method, path, op) in operations(&doc) {
        let problems = op["responses"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(status, r)| {
                status.starts_with('4') && r["content"]["application/problem+json"].is_object()
            })
            .count();
        assert!(problems > 0, "{method} {path} documents no 4xx problem");
    }
}

#[test]
fn every_error_answer_names_documented_codes() {
    let doc = openapi_document();
    let errors = std::fs::read_to_string(workspace().join("docs/ERRORS.md")).unwrap();
    for (method, path, op) in operations(&doc) {
        for (status, response) in op["responses"].as_object().unwrap() {
            if !(status.starts_with('4') || status.starts_with('5')) {
                continue;
            }
            let description = response["description"].as_str().unwrap_or_default();
            // Backticks also quote field names and headers: at least one must be a code.
            let named = description
                .split('`')
                .skip(1)
                .step_by(2)
                .any(|word| errors.contains(&format!("| `{word}` |")));
            assert!(
                named,
                "{method} {path} {status} names no code of docs/ERRORS.md: {description:?}"
            );
        }
    }
}

/// The description of `method path`'s answer `status` in `doc`, if documented.
fn answer<'d>(
    doc: &'d serde_json::Value,
    method: &str,
    path: &str,
    status: u16,
) -> Option<&'d str> {
    doc["paths"][path][method]["responses"][status.to_string()]["description"].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_problems_the_server_answers_are_documented_for_their_route() {
    let app = crate::helpers::TestApp::spawn().await;
    let doc = openapi_document();
    let staff = app
        .staff_token("docs@example.com", emporium_kernel::auth::Role::Owner)
        .await;
    let nil = "0".repeat(32);
    let cart = format!("/v1/store/carts/cart_{nil}");
    let order = format!("/v1/admin/orders/ord_{nil}");
    let product = format!("/v1/admin/products/prod_{nil}");
    // (method, path template, request), each expected to answer a problem.
    let cases: Vec<(&str, &str, reqwest::RequestBuilder)> = vec![
        (
            "get",
            "/healthz",
            app.client
                .get(app.url("/healthz"))
                .bearer_auth("not-a-token"),
        ),
        (
            "get",
            "/v1/store/carts/{id}",
            app.client.get(app.url(&cart)),
        ),
        (
            "get",
            "/v1/store/carts/{id}",
            app.client.get(app.url("/v1/store/carts/garbage")),
        ),
        (
            "delete",
            "/v1/store/carts/{id}/items/{item_id}",
            app.client
                .delete(app.url(&format!("{cart}/items/citem_{nil}"))),
        ),
        (
            "post",
            "/v1/store/carts/{id}/checkout",
            app.client
                .post(app.url(&format!("{cart}/checkout")))
                .json(&serde_json::json!({"payment": {"provider": "test"}})),
        ),
        (
            "post",
            "/v1/store/carts/{id}/checkout",
            app.client
                .post(app.url(&format!("{cart}/checkout")))
                .header("idempotency-key", "k1")
                .json(&serde_json::json!({"payment": {"provider": "test"}})),
        ),
        (
            "post",
            "/v1/store/carts/{id}/merge",
            app.client
                .post(app.url(&format!("{cart}/merge")))
                .bearer_auth(&staff),
        ),
        (
            "get",
            "/v1/store/orders",
            app.client.get(app.url("/v1/store/orders")),
        ),
        (
            "get",
            "/v1/store/orders",
            app.client
                .get(app.url("/v1/store/orders"))
                .bearer_auth(&staff),
        ),
        (
            "get",
            "/v1/store/search",
            app.client.get(app.url("/v1/store/search?limit=0")),
        ),
        (
            "get",
            "/v1/admin/products",
            app.client
                .get(app.url(&format!("/v1/admin/products?category=pcat_{nil}")))
                .bearer_auth(&staff),
        ),
        (
            "post",
            "/v1/admin/products/{id}/media",
            app.client
                .post(app.url(&format!("{product}/media")))
                .bearer_auth(&staff)
                .header("content-type", "multipart/form-data; boundary=b")
                .body("this is not multipart"),
        ),
        (
            "post",
            "/v1/admin/orders/{id}/capture",
            app.client
                .post(app.url(&format!("{order}/capture")))
                .bearer_auth(&staff),
        ),
        (
            "get",
            "/v1/admin/orders",
            app.client.get(app.url("/v1/admin/orders")),
        ),
    ];
    for (method, path, request) in cases {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let problem: serde_json::Value = response.json().await.unwrap();
        let code = problem["code"].as_str().unwrap_or_default();
        assert!(status >= 400, "{method} {path} answered {status}");
        let documented =
            answer(&doc, method, path, status).is_some_and(|d| d.contains(&format!("`{code}`")));
        assert!(
            documented,
            "{method} {path} answered {status} `{code}`, which its OpenAPI entry does not list: {:?}",
            answer(&doc, method, path, status)
        );
    }
}
