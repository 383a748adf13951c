//! The license `benches/verify.rs` and `examples/verify_instructions.rs`
//! verify: one file, so that the two measure the same document.

use serde_json::json;

/// A license as a vendor typically issues one: a customer, a term with
/// grace, seats, activations, and a dozen features of every kind.
pub fn typical_license() -> serde_json::Value {
    json!({
        "v": 1,
        "id": "lic_01J9Z6Q3W8R2T5Y7U1I4O6P8A0",
        "serial": 2,
        "product": "acme-studio",
        "name": "Acme Studio Professional",
        "customer": {"name": "Initech GmbH", "email": "it@initech.example"},
        "kind": "subscription",
        "issued_at": "2026-01-15T09:30:00Z",
        "starts_at": "2026-02-01T00:00:00Z",
        "expires_at": "2027-02-01T00:00:00Z",
        "grace_secs": 1_209_600,
        "on_expiry": "keep",
        "maintenance_until": "2027-02-01T00:00:00Z",
        "seats": {"max": 25, "hard_max": 30},
        "activations": {"max": 50, "max_transfers": 10},
        "floating": {"seats": 5, "lease_secs": 900, "borrow_max_secs": 604_800},
        "features": [
            {"code": "editor"},
            {"code": "export.pdf"},
            {"code": "export.svg"},
            {"code": "collaboration"},
            {"code": "plugins", "limit": 20},
            {"code": "cloud.render", "consumption": {"max": 5000, "overage": 500, "reset": "monthly"}},
            {"code": "api", "consumption": {"max": 100_000, "reset": "daily"}},
            {"code": "solver", "floating": {"seats": 2, "lease_secs": 300}},
            {"code": "beta.ai", "expires_at": "2026-06-01T00:00:00Z"},
            {"code": "sso"}
        ],
        "metadata": {"order": "SO-2026-00042", "reseller": "Acme EU"}
    })
}
