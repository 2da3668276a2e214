//! Payment providers: the Stripe REST API, and (in a later change) the simulated provider
//! for `polyclinic all`.

pub mod stripe;
