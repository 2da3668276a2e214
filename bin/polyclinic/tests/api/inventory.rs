//! The route inventory: every route the gateway forwards, from its route table, against the
//! merged OpenAPI document of every service (the FHIR routes against the FHIR
//! CapabilityStatement, which documents them). No route is forwarded without a documented
//! contract, and no documented `/api` route is unreachable (the services' routes for each
//! other are under `/internal/`).

use std::collections::BTreeSet;

use polyclinic_gateway::table::{Rule, TABLE};

fn documented() -> BTreeSet<String> {
    let document = serde_json::to_value(polyclinic::openapi()).unwrap();
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                routes.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    routes
}

#[test]
fn every_forwarded_route_is_documented_and_every_documented_api_route_is_forwarded() {
    let (fhir, api): (Vec<&Rule>, Vec<&Rule>) = TABLE.iter().partition(|rule| {
        rule.path.starts_with("/fhir/") && !rule.path.starts_with("/fhir/.well-known/")
    });
    for rule in fhir {
        let resource_type = rule.path["/fhir/".len()..].split('/').next().unwrap();
        assert!(
            polyclinic_fhir::capability::support(resource_type).is_some(),
            "{} {} is forwarded but the CapabilityStatement does not list {resource_type}",
            rule.verb,
            rule.path
        );
    }
    let forwarded: BTreeSet<String> = api
        .iter()
        .map(|rule| format!("{} {}", rule.verb, rule.path))
        .collect();
    let documented = documented();
    let undocumented: Vec<&String> = forwarded.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "forwarded without an OpenAPI operation: {undocumented:#?}"
    );
    let unreachable: Vec<&String> = documented
        .iter()
        .filter(|route| {
            route
                .split(' ')
                .nth(1)
                .is_some_and(|path| path.starts_with("/api/"))
        })
        .filter(|route| !forwarded.contains(*route))
        .collect();
    assert!(
        unreachable.is_empty(),
        "documented /api routes the gateway does not forward: {unreachable:#?}"
    );
    // The inventory, for the record of a run.
    println!("{} routes forwarded, each documented:", forwarded.len());
    for route in &forwarded {
        println!("  {route}");
    }
}
