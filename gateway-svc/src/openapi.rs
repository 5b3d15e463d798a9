//! The API's description (DESIGN.md §8): `/openapi.json`, generated from the
//! handlers' `#[utoipa::path]` attributes as the router registers them (so a
//! route cannot exist without an entry), and `/docs`, an HTML page rendered
//! from that spec on the server. The page needs no JavaScript and no assets
//! from anywhere: the build machines and many operators' networks are offline.

use std::{fmt::Write, sync::LazyLock};

use axum::{
    http::header,
    response::{Html, IntoResponse},
};
use serde_json::Value;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};

use crate::error::Problem;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Wallet & gift-code platform",
        description = "The public HTTP API of gateway-svc. Amounts are integers in minor units \
            (cents). Every response carries `x-request-id` (yours, or a new one), which also \
            becomes the `correlation_id` of the events the request causes. Errors are \
            `application/problem+json` with a stable `code` (DESIGN.md §9).",
    ),
    servers((url = "/", description = "this gateway")),
    components(schemas(Problem, shared_events::Limit)),
    modifiers(&AdminToken),
    tags(
        (name = "redemptions", description = "Public: redeem a code, follow a redemption"),
        (name = "gift-groups", description = "Admin: gift-code groups and their codes"),
        (name = "wallets", description = "Admin: wallets and their ledger"),
        (name = "operations", description = "Health, readiness, metrics and this description"),
    )
)]
pub struct ApiDoc;

/// The `admin` security scheme the admin routes name.
struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some("`GATEWAY_ADMIN_TOKEN`".into());
        api.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("admin", SecurityScheme::Http(bearer));
    }
}

/// The statuses every API operation can answer whatever its handler does,
/// added where its annotation does not name them, so the document lists every
/// status a route can answer:
/// - any `/api/` request: 503 `service_unavailable` (a service unreachable,
///   or the gateway or a service at capacity, with `Retry-After`);
/// - a request with a body: 400 `malformed_json`, 413 `payload_too_large`,
///   415 `unsupported_media_type`, 422 `validation_failed`;
/// - a request with parameters in its query or path: 422 `validation_failed`
///   (a path id that cannot exist is the 404 of its kind, named by the route);
/// - an admin route: 401 `unauthorized`.
pub fn complete(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{
        ContentBuilder, HeaderBuilder, Ref, RefOr, ResponseBuilder,
        path::ParameterIn,
        schema::{ObjectBuilder, Type},
    };
    let problem = |description: &str, retry: bool| {
        let mut r = ResponseBuilder::new().description(description).content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        );
        if retry {
            r = r.header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                    .description(Some("Seconds before a retry is likely to be taken"))
                    .build(),
            );
        }
        r.build()
    };
    for (path, item) in api.paths.paths.iter_mut() {
        if !path.starts_with("/api/") {
            continue;
        }
        let ops = [
            item.get.as_mut(),
            item.post.as_mut(),
            item.patch.as_mut(),
            item.put.as_mut(),
            item.delete.as_mut(),
        ];
        for op in ops.into_iter().flatten() {
            let has_body = op.request_body.is_some();
            let has_params = op.parameters.as_ref().is_some_and(|ps| {
                ps.iter().any(|p| {
                    matches!(p, RefOr::T(p)
                        if matches!(p.parameter_in, ParameterIn::Query | ParameterIn::Header))
                })
            });
            let is_admin = op.security.is_some();
            let responses = &mut op.responses.responses;
            let mut add = |status: &str, description: &str, retry: bool| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| problem(description, retry).into());
            };
            add(
                "503",
                "`service_unavailable`: a service cannot be reached, or the platform is at capacity (with `Retry-After`)",
                true,
            );
            if has_body {
                add("400", "`malformed_json`", false);
                add("413", "`payload_too_large`", false);
                add("415", "`unsupported_media_type`", false);
                add("422", "`validation_failed` with `errors`", false);
            }
            if has_params {
                add("422", "`validation_failed`: a bad parameter", false);
            }
            if is_admin {
                add("401", "`unauthorized`: no or wrong bearer token", false);
            }
        }
    }
}

/// The spec as served; built once from the same router the server runs.
static SPEC: LazyLock<String> = LazyLock::new(|| {
    crate::openapi_spec()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
});

static PAGE: LazyLock<String> = LazyLock::new(|| {
    serde_json::from_str::<Value>(&SPEC)
        .map(|spec| render(&spec))
        .unwrap_or_default()
});

#[utoipa::path(
    get, path = "/openapi.json", tag = "operations", summary = "This API as OpenAPI",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json"))
)]
pub async fn spec() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], SPEC.as_str())
}

#[utoipa::path(
    get, path = "/docs", tag = "operations", summary = "This API as a readable page",
    responses((status = 200, description = "HTML rendered from `/openapi.json`", content_type = "text/html"))
)]
pub async fn docs() -> Html<&'static str> {
    Html(PAGE.as_str())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline `code` spans, the only markdown the descriptions use.
fn text(s: &str) -> String {
    esc(s)
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{part}</code>")
            } else {
                part.to_owned()
            }
        })
        .collect()
}

/// A schema's name from a `$ref`, or its JSON when inline.
fn schema_name(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("<a href=\"#schema-{0}\">{0}</a>", esc(name));
    }
    format!(
        "<code>{}</code>",
        esc(&serde_json::to_string(schema).unwrap_or_default())
    )
}

fn render(spec: &Value) -> String {
    let title = spec["info"]["title"].as_str().unwrap_or("API");
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font:15px/1.45 system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem}}\
         code,pre{{background:#f3f3f3;padding:0 .2em}}pre{{padding:.6em;overflow:auto}}\
         .op{{border-top:1px solid #ddd;padding:.4rem 0}}.m{{font-weight:700;text-transform:uppercase;\
         display:inline-block;width:4.5rem}}table{{border-collapse:collapse}}td,th{{text-align:left;\
         padding:.1rem .6rem .1rem 0;vertical-align:top}}</style></head><body>\
         <h1>{t}</h1><p>{d}</p><p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a>. \
         Admin routes need <code>Authorization: Bearer &lt;GATEWAY_ADMIN_TOKEN&gt;</code>.</p>",
        t = esc(title),
        d = text(spec["info"]["description"].as_str().unwrap_or("")),
    );
    let paths = spec["paths"].as_object().cloned().unwrap_or_default();
    for tag in spec["tags"].as_array().cloned().unwrap_or_default() {
        let name = tag["name"].as_str().unwrap_or("");
        let _ = write!(
            h,
            "<h2>{}</h2><p>{}</p>",
            esc(name),
            text(tag["description"].as_str().unwrap_or(""))
        );
        for (path, item) in &paths {
            for method in ["get", "post", "put", "patch", "delete"] {
                let Some(op) = item.get(method) else { continue };
                if !op["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == name))
                {
                    continue;
                }
                render_op(&mut h, method, path, op);
            }
        }
    }
    h.push_str("<h2>Schemas</h2>");
    if let Some(schemas) = spec["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            let _ = write!(
                h,
                "<h3 id=\"schema-{n}\">{n}</h3><pre>{s}</pre>",
                n = esc(name),
                s = esc(&serde_json::to_string_pretty(schema).unwrap_or_default())
            );
        }
    }
    h.push_str("</body></html>\n");
    h
}

fn render_op(h: &mut String, method: &str, path: &str, op: &Value) {
    let _ = write!(
        h,
        "<div class=\"op\"><span class=\"m\">{method}</span><code>{}</code> — {}{}",
        esc(path),
        text(op["summary"].as_str().unwrap_or("")),
        if op.get("security").is_some() {
            " <em>(admin)</em>"
        } else {
            ""
        }
    );
    if let Some(d) = op["description"].as_str() {
        let _ = write!(h, "<p>{}</p>", text(d));
    }
    if let Some(params) = op["parameters"].as_array() {
        h.push_str("<table><tr><th>parameter</th><th>in</th><th></th></tr>");
        for p in params {
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(p["name"].as_str().unwrap_or("")),
                esc(p["in"].as_str().unwrap_or("")),
                text(p["description"].as_str().unwrap_or(""))
            );
        }
        h.push_str("</table>");
    }
    if let Some(content) = op["requestBody"]["content"].as_object() {
        for (ctype, media) in content {
            let _ = write!(
                h,
                "<p>Body ({}): {}</p>",
                esc(ctype),
                schema_name(&media["schema"])
            );
        }
    }
    h.push_str("<table>");
    if let Some(responses) = op["responses"].as_object() {
        for (status, r) in responses {
            let bodies: Vec<String> = r["content"]
                .as_object()
                .map(|c| {
                    c.iter()
                        .map(|(t, m)| format!("{} {}", esc(t), schema_name(&m["schema"])))
                        .collect()
                })
                .unwrap_or_default();
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(status),
                text(r["description"].as_str().unwrap_or("")),
                bodies.join("<br>")
            );
        }
    }
    h.push_str("</table></div>");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DESIGN.md §8's route table plus its operational routes: exactly these
    /// are documented, admin ones with the bearer scheme and a 401, and every
    /// API operation with its errors as `Problem`.
    #[test]
    fn the_spec_covers_every_route_of_the_contract() {
        let spec: Value = serde_json::from_str(&SPEC).expect("spec is JSON");
        let mut documented: Vec<(String, String)> = spec["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                let methods = item.as_object().expect("path item").keys().cloned();
                methods.map(move |m| (m.to_uppercase(), path.clone()))
            })
            .collect();
        documented.sort();
        let public = [
            ("POST", "/api/v1/redemptions"),
            ("GET", "/api/v1/redemptions/{id}"),
        ];
        let admin = [
            ("POST", "/api/v1/gift-groups"),
            ("GET", "/api/v1/gift-groups"),
            ("GET", "/api/v1/gift-groups/{id}"),
            ("PATCH", "/api/v1/gift-groups/{id}"),
            ("GET", "/api/v1/gift-groups/{id}/codes"),
            ("GET", "/api/v1/gift-groups/{id}/redemptions"),
            ("GET", "/api/v1/gift-groups/{id}/timeline"),
            ("GET", "/api/v1/gift-codes/{code}"),
            ("POST", "/api/v1/wallets"),
            ("GET", "/api/v1/wallets"),
            ("GET", "/api/v1/wallets/{phone}"),
            ("GET", "/api/v1/wallets/{phone}/transactions"),
            ("POST", "/api/v1/wallets/{phone}/credits"),
            ("POST", "/api/v1/wallets/{phone}/debits"),
            ("GET", "/api/v1/reconciliation"),
            ("POST", "/api/v1/redemptions/{id}/reversal"),
            ("PATCH", "/api/v1/gift-groups/{group_id}/codes/{code_id}"),
        ];
        let ops = ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"].map(|p| ("GET", p));
        let mut expected: Vec<(String, String)> = public
            .iter()
            .chain(&admin)
            .chain(&ops)
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        expected.sort();
        // Exactly these: the console's pages (/console/...) are not API.
        assert_eq!(documented, expected);

        let problem = "#/components/schemas/Problem";
        for (method, path) in public.iter().chain(&admin) {
            let op = &spec["paths"][path][method.to_lowercase()];
            let is_admin = admin.contains(&(method, path));
            assert_eq!(op.get("security").is_some(), is_admin, "{method} {path}");
            let errors: Vec<&Value> = op["responses"]
                .as_object()
                .expect("responses")
                .iter()
                .filter(|(status, _)| status.as_str() >= "400")
                .map(|(_, r)| r)
                .collect();
            assert!(!errors.is_empty(), "{method} {path} documents no errors");
            for r in errors {
                assert_eq!(
                    r["content"]["application/problem+json"]["schema"]["$ref"], problem,
                    "{method} {path}"
                );
            }
            if is_admin {
                assert!(op["responses"].get("401").is_some(), "{method} {path}");
            }
        }
        let codes = spec["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .expect("ErrorCode is an enum of words");
        assert!(codes.iter().any(|c| c == "code_already_redeemed"));
        assert!(PAGE.contains("/api/v1/wallets/{phone}/debits"));
    }

    #[test]
    fn the_page_escapes_and_links() {
        assert_eq!(text("a `<b>` c"), "a <code>&lt;b&gt;</code> c");
        let r = serde_json::json!({"$ref": "#/components/schemas/Group"});
        assert!(schema_name(&r).contains("href=\"#schema-Group\""));
    }
}
