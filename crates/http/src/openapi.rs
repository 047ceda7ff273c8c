//! What every operation of the OpenAPI document shares: the problem schema and the error
//! responses the shared layers and extractors give, added in one pass so no route documents them
//! by hand. A route's own answer for the same status keeps its text, and the shared codes are
//! appended to it.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{AdditionalProperties, ArrayItems, Schema};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::Problem;

/// Adds the `Problem` schema and the shared error responses to every operation of `doc`, and
/// opens the members of every `allOf` (see [`open_all_of_members`]).
///
/// The shared answers: 401 `token_invalid` everywhere (a bad bearer token is refused whatever
/// the route), 401 `unauthenticated` and 403 `forbidden` under `/v1/admin`, 404 `not_found` on
/// a path with parameters (a malformed id), 422 `validation_failed` on query parameters, 400,
/// 413, 415 and 422 on a JSON body, 500 `internal` and 503 `request_timeout` everywhere, and 503
/// `database_unavailable` and `database_busy` on every path but those in `without_database`
/// (handlers that never touch the database). A route taking another kind of body (a form, a
/// multipart upload) documents its own body errors.
pub fn add_shared_errors(doc: &mut OpenApi, without_database: &[&str]) {
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .schemas
        .insert(Problem::name().into_owned(), Problem::schema());
    components.schemas.insert(
        emporium_kernel::FieldError::name().into_owned(),
        emporium_kernel::FieldError::schema(),
    );
    for schema in components.schemas.values_mut() {
        if let RefOr::T(schema) = schema {
            open_all_of_members(schema);
        }
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        let admin = path.starts_with("/v1/admin");
        let has_path_params = path.contains('{');
        let uses_database = !without_database.contains(&path.as_str());
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
            let query_params =
                op.parameters.iter().flatten().any(
                    |p| matches!(p, RefOr::T(p) if matches!(p.parameter_in, ParameterIn::Query)),
                );
            let mut add = |status: &str, code: &str, description: &str| {
                add_answer(op, status, code, description);
            };
            add(
                "401",
                "token_invalid",
                "A bearer token that is invalid or expired (`token_invalid`)",
            );
            if admin {
                add(
                    "401",
                    "unauthenticated",
                    "No access token (`unauthenticated`)",
                );
                add(
                    "403",
                    "forbidden",
                    "The token's role or scopes do not allow this (`forbidden`)",
                );
            }
            if has_path_params {
                add(
                    "404",
                    "not_found",
                    "Nothing at this path, e.g. a malformed id (`not_found`)",
                );
            }
            if query_params {
                add(
                    "422",
                    "validation_failed",
                    "Invalid query parameters (`validation_failed`), each with its JSON Pointer",
                );
            }
            if json_body {
                add(
                    "400",
                    "malformed_json",
                    "Malformed request body (`malformed_json`, `body_unreadable`)",
                );
                add("413", "body_too_large", "Body too large (`body_too_large`)");
                add(
                    "415",
                    "unsupported_media_type",
                    "Body is not JSON (`unsupported_media_type`)",
                );
                add(
                    "422",
                    "validation_failed",
                    "Invalid fields (`validation_failed`), each with its JSON Pointer",
                );
            }
            add(
                "500",
                "internal",
                "Unexpected failure (`internal`); quote the request id",
            );
            if uses_database {
                add(
                    "503",
                    "database_unavailable",
                    "The database is down or busy (`database_unavailable`, `database_busy`)",
                );
            }
            add(
                "503",
                "request_timeout",
                "The request took too long and was abandoned (`request_timeout`)",
            );
        }
    }
}

/// Documents that `op` may answer `status` with problem `code`: a new problem response, or the
/// route's own answer for that status with `description` appended when it does not name `code`.
fn add_answer(op: &mut Operation, status: &str, code: &str, description: &str) {
    match op.responses.responses.get_mut(status) {
        Some(RefOr::T(response)) => {
            if !response.description.contains(&format!("`{code}`")) {
                // One sentence: the appended clause starts in lower case.
                let mut clause = description.chars();
                let first = clause.next().map(|c| c.to_lowercase().to_string());
                response.description = format!(
                    "{}; {}{}",
                    response.description,
                    first.unwrap_or_default(),
                    clause.as_str()
                );
            }
            // The shared answers are problems, whatever else the route answers with that status.
            response
                .content
                .entry(crate::PROBLEM_JSON.to_owned())
                .or_insert_with(|| {
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build()
                        .into()
                });
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            op.responses
                .responses
                .insert(status.to_owned(), problem_response(description));
        }
    }
}

/// Removes `additionalProperties: false` from the object members of every `allOf` in `schema`:
/// JSON Schema checks each member on its own, so a closed member (a request type that denies
/// unknown fields, reused in a stored resource) would reject the fields the other members add.
pub fn open_all_of_members(schema: &mut Schema) {
    match schema {
        Schema::AllOf(all) => {
            for member in &mut all.items {
                if let RefOr::T(member) = member {
                    if let Schema::Object(object) = member
                        && matches!(
                            object.additional_properties.as_deref(),
                            Some(AdditionalProperties::FreeForm(false))
                        )
                    {
                        object.additional_properties = None;
                    }
                    open_all_of_members(member);
                }
            }
        }
        Schema::OneOf(one) => one.items.iter_mut().for_each(open_inner),
        Schema::AnyOf(any) => any.items.iter_mut().for_each(open_inner),
        Schema::Object(object) => object.properties.values_mut().for_each(open_inner),
        Schema::Array(array) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                open_inner(items);
            }
        }
        _ => {}
    }
}

fn open_inner(schema: &mut RefOr<Schema>) {
    if let RefOr::T(schema) = schema {
        open_all_of_members(schema);
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
