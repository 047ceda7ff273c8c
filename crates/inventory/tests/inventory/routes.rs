//! The HTTP surface: every route is documented in OpenAPI and has exactly one access rule.

use std::collections::BTreeSet;

use crate::helpers::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented_and_has_an_access_rule() {
    let h = Harness::sqlite().await;
    let (_, doc) = emporium_inventory::router(h.service.clone()).split_for_parts();
    let mut documented = BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        let ops = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, op) in ops {
            if let Some(op) = op {
                assert_eq!(
                    op.tags.as_deref(),
                    Some(&["admin".to_owned()][..]),
                    "{method} {path}"
                );
                documented.insert((method.to_owned(), path.clone()));
            }
        }
    }
    let ruled: BTreeSet<_> = emporium_inventory::ADMIN_RULES
        .iter()
        .map(|r| (r.method.to_owned(), r.route.to_owned()))
        .collect();
    assert_eq!(documented, ruled);
    assert_eq!(ruled.len(), emporium_inventory::ADMIN_RULES.len());
    assert_eq!(documented.len(), 10);
    // Reads are open to API clients with the read scope, level writes with the write scope;
    // locations are managed by staff only.
    for rule in emporium_inventory::ADMIN_RULES {
        let expected = if rule.method == "GET" {
            Some("inventory:read")
        } else if rule.route.contains("/levels/") {
            Some("inventory:write")
        } else {
            None
        };
        assert_eq!(
            rule.access.scope, expected,
            "{} {}",
            rule.method, rule.route
        );
    }
}
