//! The install's state directory, as every install-side command opens it:
//! the settings `init` fixed (or the build compiled in), the device this
//! machine is, and the engine over it, built exactly as an application
//! linking the crate would build one.

use std::path::Path;

use entitle::device::{detect_virtual_machine, machine_fingerprint};
use entitle::license::MAX_NAME_LEN;
use entitle::store::{FileStore, InstallSettings};
use entitle::token::Keyring;
use entitle::{Engine, Error, ManualClock, SystemClock, Timestamp};

use crate::output::Failure;
use crate::Globals;

/// What a vendor compiled into this build (`build.rs`): the trust root
/// and the release date, which then override what a state records.
pub mod built_in {
    /// PEM public keys from `ENTITLE_TRUSTED_KEYS` at build time, or "".
    pub const KEYS: &str = include_str!(concat!(env!("OUT_DIR"), "/trusted_keys.pem"));
    /// `ENTITLE_RELEASE_DATE` at build time, or "".
    pub const RELEASE_DATE: &str = include_str!(concat!(env!("OUT_DIR"), "/release_date.txt"));

    /// Whether this build trusts only its own keys.
    pub const fn has_keys() -> bool {
        !KEYS.is_empty()
    }
}

/// What `init` fixed about an install.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The product enforced.
    pub product: String,
    /// What `init` recorded beside it.
    pub install: InstallSettings,
}

impl Settings {
    /// Reads the settings of the state in `dir`. A state that `init` never
    /// made (or finished) is missing, not corrupt: running `init` mends it.
    pub fn read(store: &FileStore, dir: &Path) -> Result<Self, Error> {
        let settings = store.settings()?;
        match (settings.product, settings.install) {
            (Some(product), Some(install)) => Ok(Settings { product, install }),
            (Some(product), None) if built_in::has_keys() => Ok(Settings {
                product,
                install: InstallSettings::default(),
            }),
            _ => Err(Error::StateMissing {
                path: dir.display().to_string(),
            }),
        }
    }

    /// The keys this CLI trusts: those compiled into it, if any (then the
    /// state's are ignored), else those `init` recorded.
    pub fn keyring(&self, dir: &Path) -> Result<Keyring, Error> {
        if built_in::has_keys() {
            return Keyring::from_pems(pem_blocks(built_in::KEYS)).map_err(|e| {
                Error::InvalidArgument(format!(
                    "this build's compiled-in keys do not read ({e}); rebuild with \
                     ENTITLE_TRUSTED_KEYS naming PEM public keys"
                ))
            });
        }
        let pems = self.install.trusted_keys.iter().map(String::as_str);
        Keyring::from_pems(pems).map_err(|e| Error::StateCorrupt {
            path: dir.display().to_string(),
            detail: format!("a trusted key does not read ({e})"),
        })
    }

    /// The release date in force: the build's own, if compiled in, else
    /// the one `init` recorded.
    pub fn release_date(&self) -> Result<Option<Timestamp>, Error> {
        if built_in::RELEASE_DATE.is_empty() {
            return Ok(self.install.release_date.map(Timestamp::from_unix));
        }
        Timestamp::parse(built_in::RELEASE_DATE)
            .map(Some)
            .map_err(|e| {
                Error::InvalidArgument(format!(
                    "this build's ENTITLE_RELEASE_DATE is not an RFC 3339 time ({e}); rebuild it"
                ))
            })
    }

    /// The device this install is on `here` (this machine's fingerprint,
    /// computed afresh; `None` where the system gives no machine id), and
    /// whether the state was made on another machine. A state names its
    /// device only on the machine it was made on; anywhere else the device
    /// is that machine itself, which no activation made for the old one
    /// covers (DESIGN section 11). With no device, node-locked rights are
    /// denied (`DEVICE_UNKNOWN`).
    pub fn device_on(&self, here: Option<&str>) -> (Option<String>, bool) {
        let here_owned = here.map(str::to_owned);
        match (&self.install.device, &self.install.machine) {
            (Some(named), home) if home.as_deref() == here => (Some(named.clone()), false),
            (None, Some(home)) => (here_owned, Some(home.as_str()) != here),
            // Written before machines were recorded: the device it names
            // holds only if it is this machine.
            (Some(named), None) if Some(named.as_str()) == here => (Some(named.clone()), false),
            (None, None) => (here_owned, false),
            _ => (here_owned, true),
        }
    }
}

/// The PEM blocks of a text holding several.
fn pem_blocks(text: &str) -> impl Iterator<Item = &str> {
    const END: &str = "-----END PUBLIC KEY-----";
    text.split_inclusive(END)
        .filter(|block| block.contains(END))
}

/// An opened install: its engine and the device it is.
pub struct Install {
    /// The engine on the state directory.
    pub engine: Engine,
    /// The device this install is, for activations and requests (`None`:
    /// this machine has no machine id).
    pub device: Option<String>,
    /// The state was made on another machine: node-locked rights it held
    /// there do not hold here.
    pub moved: bool,
}

/// Opens the state directory as an engine: `STATE_MISSING` if `init` never
/// ran there.
pub fn open_engine(globals: &Globals) -> Result<Engine, Failure> {
    Ok(open_install(globals)?.engine)
}

/// Opens the state directory: the engine and the device it is.
pub fn open_install(globals: &Globals) -> Result<Install, Error> {
    open_install_with(globals, false)
}

/// Opens the state directory, with the engine refreshing its view of the
/// state in the background or not (one command, one mutation: nothing to
/// keep fresh afterwards; a server runs for long).
pub fn open_install_with(globals: &Globals, refresh: bool) -> Result<Install, Error> {
    let dir = globals.state_dir();
    let store = FileStore::open(&dir)?;
    let settings = Settings::read(&store, &dir)?;
    let (device, moved) = settings.device_on(machine_fingerprint().as_deref());
    let mut builder = Engine::builder(settings.product.as_str())
        .keyring(settings.keyring(&dir)?)
        .store(store)
        .virtual_machine(detect_virtual_machine())
        .background_refresh(refresh);
    if let Some(device) = &device {
        builder = builder.fingerprint(device.as_str());
    }
    if let Some(date) = settings.release_date()? {
        builder = builder.release_date(date);
    }
    builder = match globals.now {
        Some(now) => builder.clock(ManualClock::new(now)),
        None => builder.clock(SystemClock),
    };
    Ok(Install {
        engine: builder.build()?,
        device,
        moved,
    })
}

/// Refuses names a state cannot hold well: empty, too long, or with
/// control characters (which would garble every listing).
pub fn check_name(name: &str, what: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!(
            "{what} is 1 to {MAX_NAME_LEN} printable characters"
        )));
    }
    Ok(())
}
