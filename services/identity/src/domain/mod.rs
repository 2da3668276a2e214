//! The identity service's types and rules: no HTTP, no SQL.
//!
//! Inputs become these types at the boundary (`parse`), so an invalid email, name, password
//! or fee cannot exist past it.

pub mod department;
pub mod fields;
pub mod password;
pub mod user;
