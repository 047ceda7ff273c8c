//! What every operation of the OpenAPI document shares: the problem schema and the error
//! responses any route can give, added in one pass so no route documents them by hand.

use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::Problem;

/// Adds the `Problem` schema and the shared error responses to every operation of `doc`.
pub fn add_shared_errors(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .schemas
        .insert(Problem::name().into_owned(), Problem::schema());
    components.schemas.insert(
        emporium_kernel::FieldError::name().into_owned(),
        emporium_kernel::FieldError::schema(),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        let authenticated = path.starts_with("/v1/admin") || path.starts_with("/v1/store/me");
        let ops: [&mut Option<Operation>; 5] = [
            &mut item.get,
            &mut item.delete,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
        ];
        for op in ops {
            let Some(op) = op.as_mut() else { continue };
            let body_media = op
                .request_body
                .as_ref()
                .map(|b| match b {
                    RefOr::T(body) => body.content.keys().cloned().collect::<Vec<_>>(),
                    // A referenced body is a JSON schema component.
                    RefOr::Ref(_) => vec!["application/json".to_owned()],
                })
                .unwrap_or_default();
            let json_body = body_media.iter().any(|m| m.contains("json"));
            let mut add = |status: &str, description: &str| {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| problem_response(description));
            };
            if !body_media.is_empty() {
                add("413", "Body too large (`body_too_large`)");
            }
            if json_body {
                add("400", "Malformed request body (`malformed_json`)");
                add("415", "Body is not JSON (`unsupported_media_type`)");
                add(
                    "422",
                    "Invalid fields (`validation_failed`), each with its JSON Pointer",
                );
            }
            if authenticated {
                add(
                    "401",
                    "Missing or invalid access token (`unauthenticated`, `token_invalid`)",
                );
                add("403", "The token does not allow this (`forbidden`)");
            }
            add(
                "500",
                "Unexpected failure (`internal`); quote the request id",
            );
            add(
                "503",
                "A dependency is down or the request timed out (`database_unavailable`, `request_timeout`)",
            );
        }
    }
}

/// A response whose body is a problem.
pub fn problem_response(description: &str) -> RefOr<utoipa::openapi::response::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            crate::PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}
