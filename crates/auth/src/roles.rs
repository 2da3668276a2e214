//! The canonical roles and the one converter from token claims to them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A role of a caller. People have one of the first four; service clients have `Service`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    Admin,
    Doctor,
    Nurse,
    Patient,
    /// A platform service acting on its own behalf (client credentials).
    Service,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Doctor,
        Role::Nurse,
        Role::Patient,
        Role::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::Doctor => "DOCTOR",
            Role::Nurse => "NURSE",
            Role::Patient => "PATIENT",
            Role::Service => "SERVICE",
        }
    }

    /// Reads a role name as providers write it: `ADMIN`, `admin`, `ROLE_ADMIN`. Anything
    /// else (Keycloak's `offline_access`, `default-roles-*`, ...) is not ours.
    pub fn parse(name: &str) -> Option<Role> {
        let upper = name.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("ROLE_").unwrap_or(&upper);
        Role::ALL.into_iter().find(|role| role.as_str() == bare)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of roles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RoleSet(u8);

impl RoleSet {
    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    pub fn insert(&mut self, role: Role) {
        self.0 |= role.bit();
    }

    /// Whether any of `roles` is in the set.
    pub fn any(self, roles: &[Role]) -> bool {
        roles.iter().any(|role| self.contains(*role))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL
            .into_iter()
            .filter(move |role| self.contains(*role))
    }
}

impl FromIterator<Role> for RoleSet {
    fn from_iter<I: IntoIterator<Item = Role>>(iter: I) -> Self {
        let mut set = RoleSet::default();
        for role in iter {
            set.insert(role);
        }
        set
    }
}

/// The one converter: roles from `realm_access.roles` and `resource_access.<client>.roles`
/// (Keycloak) and `roles` (the built-in provider), normalised. Only `own_client`'s client
/// roles count (Polyclinic's API client, the token's audience): a role called `admin` on
/// any other client of the realm (Keycloak's `account`, another application's) is that
/// client's business and grants nothing here.
pub fn from_claims(claims: &Value, own_client: &str) -> RoleSet {
    let names = |value: Option<&Value>| -> Vec<String> {
        value
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut all = names(claims.get("roles"));
    all.extend(names(claims.pointer("/realm_access/roles")));
    if let Some(client) = claims
        .get("resource_access")
        .and_then(|clients| clients.get(own_client))
    {
        all.extend(names(client.get("roles")));
    }
    all.iter().filter_map(|name| Role::parse(name)).collect()
}

/// The scopes a token grants: the words of its `scope` claim (the built-in provider,
/// RFC 9068), and `own_client`'s client roles that name a scope (`payments:refund`: how a
/// Keycloak realm grants them to a service account).
pub fn scopes_from_claims(claims: &Value, own_client: &str) -> Vec<String> {
    let mut scopes: Vec<String> = claims
        .get("scope")
        .and_then(Value::as_str)
        .map(|scope| scope.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    if let Some(roles) = claims
        .pointer(&format!(
            "/resource_access/{}/roles",
            own_client.replace('~', "~0").replace('/', "~1")
        ))
        .and_then(Value::as_array)
    {
        scopes.extend(
            roles
                .iter()
                .filter_map(Value::as_str)
                .filter(|role| role.contains(':'))
                .map(str::to_owned),
        );
    }
    scopes.sort();
    scopes.dedup();
    scopes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keycloak_and_builtin_role_claims_become_one_set() {
        let keycloak = json!({
            "realm_access": {"roles": ["offline_access", "default-roles-polyclinic", "DOCTOR"]},
            "resource_access": {"polyclinic-api": {"roles": ["role_admin"]}, "account": {"roles": ["manage-account"]}}
        });
        let roles = from_claims(&keycloak, "polyclinic-api");
        assert!(roles.contains(Role::Doctor));
        assert!(roles.contains(Role::Admin));
        assert!(!roles.contains(Role::Patient));
        assert_eq!(roles.iter().count(), 2);

        let builtin = json!({"roles": ["PATIENT"], "realm_access": {"roles": ["PATIENT"]}});
        assert_eq!(
            from_claims(&builtin, "polyclinic-api")
                .iter()
                .collect::<Vec<_>>(),
            [Role::Patient]
        );
    }

    #[test]
    fn a_role_on_another_client_grants_nothing() {
        let claims = json!({
            "realm_access": {"roles": ["PATIENT"]},
            "resource_access": {
                "billing-app": {"roles": ["admin"]},
                "account": {"roles": ["ADMIN", "manage-account"]}
            }
        });
        assert_eq!(
            from_claims(&claims, "polyclinic-api")
                .iter()
                .collect::<Vec<_>>(),
            [Role::Patient]
        );
    }

    #[test]
    fn claims_without_roles_give_an_empty_set() {
        assert!(from_claims(&json!({"sub": "x"}), "polyclinic-api").is_empty());
        assert!(
            from_claims(&json!({"roles": "ADMIN"}), "polyclinic-api").is_empty(),
            "a string is not a list"
        );
    }
}
