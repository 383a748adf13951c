//! Shared fixtures: a vendor, licenses it signs, and engines on a manual clock.
#![allow(dead_code)]

use entitle::books::{Books, BooksBuilder};
use entitle::token::{sign, SigningKey, TokenType};
use entitle::{Engine, EngineBuilder, ManualClock, Timestamp};
use serde_json::{json, Value};

pub const T0: &str = "2026-01-01T00:00:00Z";
pub const DAY: i64 = 24 * 3600;

pub fn t(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

pub struct Vendor {
    pub key: SigningKey,
}

impl Vendor {
    pub fn new() -> Self {
        Vendor {
            key: SigningKey::from_seed(&[42; 32]),
        }
    }

    /// Signs a license document; `v`, `product` and `issued_at` are filled
    /// in when missing.
    pub fn license(&self, mut doc: Value) -> String {
        let obj = doc.as_object_mut().unwrap();
        obj.entry("v").or_insert(json!(1));
        obj.entry("product").or_insert(json!("acme"));
        obj.entry("issued_at").or_insert(json!(T0));
        sign(&doc, &self.key, TokenType::License).unwrap()
    }

    pub fn revocations(&self, ids: &[&str], issued_at: &str) -> String {
        self.revocations_for(None, ids, issued_at)
    }

    /// A revocation list, naming `product` when given.
    pub fn revocations_for(&self, product: Option<&str>, ids: &[&str], issued_at: &str) -> String {
        let mut list = json!({"v": 1, "issued_at": issued_at, "ids": ids});
        if let Some(product) = product {
            list["product"] = json!(product);
        }
        sign(&list, &self.key, TokenType::Revocations).unwrap()
    }

    /// Signs any payload as a token of `typ`.
    pub fn sign(&self, payload: Value, typ: TokenType) -> String {
        sign(&payload, &self.key, typ).unwrap()
    }

    /// An engine's builder, in memory unless a `.store(..)` follows.
    pub fn builder(&self, clock: &ManualClock) -> EngineBuilder {
        Engine::builder("acme")
            .in_memory()
            .trust(self.key.public_key().clone())
            .clock(clock.clone())
            .background_refresh(false)
    }

    pub fn engine(&self, clock: &ManualClock) -> Engine {
        self.builder(clock).build().unwrap()
    }

    /// The vendor's books, trusting this vendor, on `clock`.
    pub fn books_builder(&self, clock: &ManualClock) -> BooksBuilder {
        Books::builder("acme")
            .trust(self.key.public_key().clone())
            .clock(clock.clone())
            .background_refresh(false)
    }

    /// The vendor's books in memory.
    pub fn books(&self, clock: &ManualClock) -> Books {
        self.books_builder(clock).in_memory().build().unwrap()
    }
}

pub fn clock_at(text: &str) -> ManualClock {
    ManualClock::new(t(text))
}
