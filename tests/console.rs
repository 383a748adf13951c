//! The console (docs/http.md#the-console), as served: the real `entitle
//! serve` on 127.0.0.1, port 0. Its files come from the binary under a
//! strict policy, it is off with the admin routes, and nothing in it
//! names another origin or parses data as HTML. What the page does in a
//! browser is tests/console/console.test.mjs, run by tests/console/run.sh.
#![cfg(feature = "server")]

mod server_common;

use serde_json::{json, Value};
use server_common::{install, request, Server, ADMIN_TOKEN};

const INDEX_HTML: &str = include_str!("../src/server/console/index.html");
const CONSOLE_JS: &str = include_str!("../src/server/console/console.js");
const CONSOLE_CSS: &str = include_str!("../src/server/console/console.css");

fn spec() -> Value {
    json!({
        "product": "acme",
        "id": "lic_1",
        "floating": {"seats": 2, "lease_secs": 60},
        "features": [{"code": "cad"}],
    })
}

fn serve() -> (tempfile::TempDir, Server) {
    let dir = install(spec());
    let server = Server::start(dir.path(), &["--admin-token-file", "admin.token"]);
    (dir, server)
}

#[test]
fn the_console_is_served_from_the_binary_under_a_strict_policy() {
    let (_dir, server) = serve();
    for (path, body, content_type) in [
        ("/admin/", INDEX_HTML, "text/html; charset=utf-8"),
        (
            "/admin/console.js",
            CONSOLE_JS,
            "text/javascript; charset=utf-8",
        ),
        ("/admin/console.css", CONSOLE_CSS, "text/css; charset=utf-8"),
    ] {
        // The page itself needs no token: it is the same for everyone.
        let reply = server.get(path);
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.text, body, "{path} is the file compiled in");
        assert_eq!(reply.header("content-type"), Some(content_type), "{path}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(reply.header("x-frame-options"), Some("DENY"));
        assert_eq!(reply.header("cache-control"), Some("no-cache"));
        let csp = reply.header("content-security-policy").unwrap_or("");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-"), "{csp}");
        assert!(!csp.contains("http"), "no other origin: {csp}");
    }
    // The admin routes the page calls still want the token.
    let status = server.admin("GET", "/admin/license/status", None, None);
    assert_eq!((status.status, status.code()), (401, "UNAUTHORIZED"));
    let status = server.admin("GET", "/admin/license/status", Some(ADMIN_TOKEN), None);
    assert_eq!(status.status, 200);
}

#[test]
fn an_unchanged_console_file_is_not_sent_again() {
    let (_dir, server) = serve();
    let first = server.get("/admin/console.js");
    let etag = first.header("etag").expect("an ETag").to_owned();
    let again = request(
        &server.addr,
        "GET",
        "/admin/console.js",
        &[&format!("If-None-Match: {etag}")],
        None,
    );
    assert_eq!(again.status, 304);
    assert!(again.text.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    // Another file's tag, or a stale one, gets the file.
    let stale = request(
        &server.addr,
        "GET",
        "/admin/console.js",
        &["If-None-Match: \"0000\""],
        None,
    );
    assert_eq!((stale.status, stale.text.as_str()), (200, CONSOLE_JS));
    let css = server.get("/admin/console.css");
    assert_ne!(css.header("etag"), Some(etag.as_str()));
}

#[test]
fn admin_without_a_slash_is_sent_to_the_console() {
    let (_dir, server) = serve();
    let reply = server.get("/admin");
    assert_eq!(reply.status, 308);
    assert_eq!(reply.header("location"), Some("/admin/"));
}

#[test]
fn the_console_is_off_with_the_admin_routes() {
    let dir = install(spec());
    let server = Server::start(dir.path(), &[]);
    for path in [
        "/admin",
        "/admin/",
        "/admin/console.js",
        "/admin/console.css",
    ] {
        let reply = server.get(path);
        assert_eq!((reply.status, reply.code()), (404, "NOT_FOUND"), "{path}");
        assert!(!reply.text.contains("<html"), "{path}");
    }
}

#[test]
fn the_console_names_no_other_origin_and_parses_no_data_as_html() {
    // Air-gapped: nothing is fetched from anywhere but the server. The SVG
    // namespace is a name, not an address the browser loads.
    for (name, text) in [
        ("index.html", INDEX_HTML),
        ("console.js", CONSOLE_JS),
        ("console.css", CONSOLE_CSS),
    ] {
        let text = text.replace("http://www.w3.org/2000/svg", "");
        for outside in ["http://", "https://", "\"//", "'//", "ws://", "wss://"] {
            assert!(!text.contains(outside), "{name} names an outside address");
        }
        assert!(!text.contains("@import"), "{name}");
        assert!(!text.contains("url("), "{name}");
    }
    // No inline script or style for the policy to refuse.
    assert_eq!(INDEX_HTML.matches("<script").count(), 1);
    assert!(INDEX_HTML.contains(r#"<script src="console.js" defer></script>"#));
    assert!(!INDEX_HTML.contains("style="));
    for handler in ["onclick=", "onload=", "onerror=", "onsubmit=", "onchange="] {
        assert!(!INDEX_HTML.contains(handler), "an inline {handler}");
    }
    // Data becomes text nodes: nothing that parses a string as markup.
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ] {
        assert!(!CONSOLE_JS.contains(sink), "console.js uses {sink}");
    }
    // The token stays in this tab's storage and the Authorization header.
    assert!(CONSOLE_JS.contains("sessionStorage"));
    assert!(!CONSOLE_JS.contains("localStorage"));
    assert!(!CONSOLE_JS.contains("document.cookie"));
}
