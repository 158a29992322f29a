//! The OpenAPI document: generated from the handlers' `#[utoipa::path]` attributes and the
//! types they take and return, then completed from the guard's own rules — which paths are
//! public, the role each operation needs ([`auth::required_role`], extension
//! `x-runbook-role`), and the answers the guard gives before a handler runs (401, 403, 429).

use axum::http::Method;
use serde_json::{Value, json};
use utoipa::{OpenApi, ToSchema};

use crate::auth;

/// Every error answer: one line naming what and why.
#[derive(serde::Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// What is wrong.
    pub(crate) error: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "runbook API",
        description = "Backups that restore. Auth: x-runbook-api-key or Authorization: Bearer; \
                       roles readonly < operator (dispatcher) < owner. Each operation names the \
                       role it needs in x-runbook-role.",
    ),
    components(schemas(ErrorBody))
)]
struct Base;

/// The document's fixed parts: title, description, the error schema.
pub(crate) fn base() -> utoipa::openapi::OpenApi {
    let mut doc = Base::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// The finished document as JSON: security schemes, and per operation its security, role
/// and the guard's answers.
pub(crate) fn finish(doc: utoipa::openapi::OpenApi) -> String {
    // Serializing a document of plain values cannot fail.
    let mut v = serde_json::to_value(doc).expect("the OpenAPI document serializes");
    v["components"]["securitySchemes"] = json!({
        "apiKey": { "type": "apiKey", "in": "header", "name": "x-runbook-api-key" },
        "bearer": { "type": "http", "scheme": "bearer" },
    });
    let error =
        json!({ "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } });
    if let Some(paths) = v["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(ops) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in ops.iter_mut() {
                let Ok(m) = method.to_ascii_uppercase().parse::<Method>() else {
                    continue;
                };
                complete(path, &m, op, &error);
            }
        }
    }
    serde_json::to_string_pretty(&v).expect("a JSON value serializes")
}

/// Adds what the guard decides to one operation.
fn complete(path: &str, method: &Method, op: &mut Value, error: &Value) {
    if auth::is_public(path) {
        op["security"] = json!([]);
        return;
    }
    // A job accepted links to the job, so clients (and schemathesis) can follow it.
    if let Some(accepted) = op["responses"].get_mut("202")
        && accepted["content"]["application/json"]["schema"]["$ref"]
            == "#/components/schemas/Accepted"
    {
        accepted["links"] = json!({ "job": {
            "operationId": "job",
            "parameters": { "id": "$response.body#/job_id" },
            "description": "the job, to follow it to its end",
        }});
    }
    let role = auth::required_role(method, path);
    op["security"] = json!([{ "apiKey": [] }, { "bearer": [] }]);
    op["x-runbook-role"] = json!(role.as_str());
    let guard = [
        ("401", "missing or unknown key"),
        (
            "403",
            "the key's role is below the one this operation needs",
        ),
        ("429", "rate limited (see Retry-After)"),
    ];
    for (code, text) in guard {
        let responses = &mut op["responses"];
        if responses.get(code).is_none() {
            responses[code] = json!({ "description": text, "content": error });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        serde_json::from_str(crate::routes::openapi_json()).expect("json")
    }

    #[test]
    fn roles_and_security_come_from_the_guard() {
        let d = doc();
        let op = |p: &str, m: &str| d["paths"][p][m].clone();
        assert_eq!(
            op("/api/backups/restore", "post")["x-runbook-role"],
            "owner"
        );
        assert_eq!(op("/api/backups/run", "post")["x-runbook-role"], "operator");
        assert_eq!(op("/api/backups", "get")["x-runbook-role"], "readonly");
        assert_eq!(op("/api/secrets", "get")["x-runbook-role"], "owner");
        assert_eq!(op("/healthz", "get")["security"], json!([]));
        assert_eq!(op("/ping/{key}", "head")["security"], json!([]));
        assert!(op("/healthz", "get")["responses"].get("401").is_none());
        assert!(op("/api/jobs", "get")["responses"].get("429").is_some());
    }

    #[test]
    fn every_route_is_described_with_its_types() {
        let d = doc();
        let paths = d["paths"].as_object().expect("paths");
        assert_eq!(paths.len(), 26, "{:?}", paths.keys().collect::<Vec<_>>());
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("ops") {
                assert!(op["summary"].is_string(), "{method} {path} has a summary");
            }
        }
        let schemas = d["components"]["schemas"].as_object().expect("schemas");
        for name in [
            "Job",
            "Snapshot",
            "RunBody",
            "RestoreBody",
            "ClusterView",
            "ErrorBody",
        ] {
            assert!(schemas.contains_key(name), "{name} in {:?}", schemas.keys());
        }
    }
}
