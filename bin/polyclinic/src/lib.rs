//! The `polyclinic` binary's library face: the platform as `polyclinic-platform` assembles it,
//! so the binary's own tests read `polyclinic::run` as before.

pub use polyclinic_platform::*;
