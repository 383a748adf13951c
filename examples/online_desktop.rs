//! A desktop application licensed online: at its first start the
//! customer types the license key the vendor e-mailed, and the app
//! activates this machine with the vendor's service; at every start it
//! syncs (renewals, revocations, a machine the vendor freed) and checks
//! the feature it sells. Everything the service answers is a token
//! signed by the vendor and verified here, so the state it leaves works
//! offline until the next sync.
//!
//! Run it against `entitle serve --books` (docs/http.md#the-vendors-service):
//!
//! ```sh
//! E=target/debug/entitle    # cargo build --features server,client
//! $E keygen --out vendor
//! $E --state books init --pub vendor.pub --product acme
//! echo a-long-admin-token-123 > admin.tok
//! $E --state books serve --books --vendor-key vendor.key \
//!     --listen 127.0.0.1:8750 --admin-token-file admin.tok &
//! curl -s -X POST http://127.0.0.1:8750/admin/licenses \
//!     -H "Authorization: Bearer a-long-admin-token-123" \
//!     -d '{"spec": {"product": "acme", "activations": {"max": 2, "counted_by": "vendor"},
//!                   "features": [{"code": "cad"}]}}'          # answers the "key"
//! cargo run --example online_desktop --features server,client -- \
//!     --url http://127.0.0.1:8750 --key KEY --pub vendor.pub --state app-state
//! ```
//!
//! Run it twice: the second start finds the activation in its state and
//! only syncs. `--url` and `--key` may come from `$ACME_LICENSING_URL`
//! and `$ACME_LICENSE_KEY`; without `--state` the state goes to a
//! temporary directory, forgotten at exit.

use std::path::Path;

use entitle::client::{OnlineActivation, SyncOutcome, VendorClient};
use entitle::store::FileStore;
use entitle::token::PublicKey;
use entitle::{Engine, Error};

/// The product the app is, and the feature it sells.
pub const PRODUCT: &str = "acme";
/// The feature this app checks.
pub const FEATURE: &str = "cad";

/// What one start of the app did.
#[derive(Debug)]
pub struct Startup {
    /// Activated now (first start), or `None`: the state held a license.
    pub activated: Option<OnlineActivation>,
    /// What the sync applied, or why it could not be made (offline: the
    /// rights held stay).
    pub synced: Result<SyncOutcome, Error>,
    /// Whether [`FEATURE`] is allowed, and the words to show if not.
    pub allowed: bool,
    /// The user's words for the feature's decision.
    pub message: &'static str,
}

/// The install's engine: the vendor's public key (a real app compiles it
/// in with `include_str!`), its state in `state_dir` (the user's data
/// directory), this machine's fingerprint from the operating system.
pub fn open_install(state_dir: &Path, vendor_pub_pem: &str) -> Result<Engine, Error> {
    let store = match FileStore::open(state_dir) {
        Err(Error::StateMissing { .. }) => FileStore::create(state_dir)?,
        opened => opened?,
    };
    Engine::builder(PRODUCT)
        .trust(PublicKey::from_pem(vendor_pub_pem)?)
        .store(store)
        .build()
}

/// One start of the app: activate with `key` if no license is installed
/// yet, sync with the vendor's service, check [`FEATURE`].
pub fn start_up(engine: &Engine, vendor: &VendorClient, key: &str) -> Result<Startup, Error> {
    let activated = if engine.license_infos().is_empty() {
        Some(engine.activate_online(vendor, key)?)
    } else {
        None
    };
    let synced = engine.sync_online(vendor);
    let decision = engine.check_feature(FEATURE);
    Ok(Startup {
        activated,
        synced,
        allowed: decision.allowed(),
        message: decision.message(),
    })
}

/// `--name VALUE` from the command line, else `$variable`.
fn argument(name: &str, variable: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var(variable).ok())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: online_desktop --url URL --key KEY --pub vendor.pub [--state DIR]";
    let url = argument("--url", "ACME_LICENSING_URL").ok_or(usage)?;
    let key = argument("--key", "ACME_LICENSE_KEY").ok_or(usage)?;
    let vendor_pub = std::fs::read_to_string(argument("--pub", "ACME_VENDOR_PUB").ok_or(usage)?)?;
    let temporary = tempfile::tempdir()?;
    let state_dir = argument("--state", "ACME_STATE_DIR")
        .map_or_else(|| temporary.path().to_owned(), Into::into);

    let engine = open_install(&state_dir, &vendor_pub)?;
    let vendor = VendorClient::new(&url)?;
    match start_up(&engine, &vendor, &key) {
        Ok(started) => {
            match &started.activated {
                Some(done) if done.newly_counted => println!(
                    "activated this machine ({}) for license {}",
                    done.fingerprint, done.license_id
                ),
                Some(done) => println!("license {} was activated here before", done.license_id),
                None => println!("already activated: the state holds the license"),
            }
            match &started.synced {
                Ok(sync) => println!(
                    "synced: {} change(s), revoked {:?}, withdrawn {}",
                    sync.applied(),
                    sync.revoked,
                    sync.withdrawn.len()
                ),
                Err(e) => println!("not synced ({}); the rights held stay", e.user_message()),
            }
            println!(
                "check_feature({FEATURE:?}): {}",
                if started.allowed {
                    "allowed"
                } else {
                    started.message
                }
            );
        }
        // A key mistyped, a license used up, no network: the user's words.
        Err(e) => println!("not activated: {} [{}]", e.user_message(), e.code()),
    }
    Ok(())
}
