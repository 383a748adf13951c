//! Named users carry a name and an email: words, kept across reopening
//! and shown in usage, granting nothing.

mod common;

use common::*;
use entitle::engine::NewUser;
use entitle::store::FileStore;
use serde_json::json;

#[test]
fn a_users_name_and_email_are_kept_across_reopen_and_shown_in_usage() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let dir = tempfile::tempdir().unwrap();
    let open = |store: FileStore| vendor.builder(&clock).store(store).build().unwrap();
    {
        let engine = open(FileStore::create(dir.path()).unwrap());
        engine
            .add_license(&vendor.license(json!({"id": "s", "seats": {"max": 5}})))
            .unwrap();
        let ann = NewUser::new("ann", "editor")
            .name("Ann Lee")
            .email("ann@example.com");
        assert!(engine.add_user_with(&ann).unwrap().allowed());
        engine.add_user("bob", "viewer").unwrap();
        // Activity and a plain re-add keep what she was given.
        clock.advance(60);
        engine.record_activity("ann").unwrap();
        engine.add_user("ann", "editor").unwrap();
        // A new email replaces the old one; the name stays.
        engine
            .add_user_with(&NewUser::new("ann", "editor").email("ann@example.org"))
            .unwrap();
    }
    let engine = open(FileStore::open(dir.path()).unwrap());
    let usage = engine.usage(0, 10);
    let ann = &usage.users[0];
    assert_eq!(ann.id, "ann");
    assert_eq!(ann.name.as_deref(), Some("Ann Lee"));
    assert_eq!(ann.email.as_deref(), Some("ann@example.org"));
    assert_eq!(
        (usage.users[1].name.as_ref(), usage.users[1].email.as_ref()),
        (None, None)
    );
}

#[test]
fn a_bad_name_or_email_is_refused() {
    let vendor = Vendor::new();
    let engine = vendor.engine(&clock_at(T0));
    engine
        .add_license(&vendor.license(json!({"id": "s", "seats": {"max": 5}})))
        .unwrap();
    for user in [
        NewUser::new("ann", "t").email("no-at-sign"),
        NewUser::new("ann", "t").name(""),
        NewUser::new("ann", "t").name("line\nbreak"),
        NewUser::new("ann", "t").email("x".repeat(300) + "@example.com"),
    ] {
        let err = engine.add_user_with(&user).unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT", "{user:?}");
    }
    assert_eq!(engine.usage(0, 10).total, 0);
}
