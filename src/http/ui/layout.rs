//! What every audit page shares and the others link by: the page around a body, how a time is written, and
//! how a target's page is addressed. A leaf: it imports none of the pages.

use maud::{DOCTYPE, Markup, html};

/// A time as the pages write it (RFC 3339, UTC).
pub(super) use crate::audit::rfc3339 as when;

/// The page around `body`: its title, the stylesheet, and, once signed in, the navigation and the logout.
pub(super) fn layout(title: &str, signed_in: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · reflex" }
                link rel="stylesheet" href="/ui/style.css";
            }
            body {
                header {
                    h1 { a href="/ui/" { "reflex" } " · " (title) }
                    @if signed_in {
                        nav aria-label="pages" {
                            a href="/ui/" { "Timeline" }
                            a href="/ui/approvals" { "Approvals" }
                        }
                        form method="post" action="/ui/logout" {
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// How a target's page is addressed: `account:region:name`, the name as configured (percent-encoded in the
/// path, a target group's ARN included).
pub(super) fn path_of(account: &str, region: &str, name: &str) -> String {
    let key = format!("{account}:{region}:{name}");
    format!(
        "/ui/targets/{}",
        url::form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>()
    )
}
