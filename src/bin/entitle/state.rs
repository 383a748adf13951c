//! The install's state, as every install-side command opens it: where it
//! lives (a directory, or a namespace in PostgreSQL), the settings `init`
//! fixed (or the build compiled in), the device this machine is, and the
//! engine over it, built exactly as an application linking the crate
//! would build one.

use std::fmt;
use std::path::PathBuf;

use entitle::books::{Books, BooksBuilder};
use entitle::device::{detect_virtual_machine, machine_fingerprint};
use entitle::license::MAX_NAME_LEN;
#[cfg(feature = "postgres")]
use entitle::store::PgStore;
use entitle::store::{FileStore, InstallSettings};
use entitle::token::Keyring;
use entitle::{Engine, EngineBuilder, Error, ManualClock, SystemClock, Timestamp};

use crate::output::Failure;
use crate::Globals;

/// What a vendor compiled into this build (`build.rs`): the trust root
/// and the release date, which then override what a state records.
pub mod built_in {
    /// PEM public keys from `ENTITLE_TRUSTED_KEYS` at build time, or "".
    pub const KEYS: &str = include_str!(concat!(env!("OUT_DIR"), "/trusted_keys.pem"));
    /// `ENTITLE_RELEASE_DATE` at build time, or "".
    pub const RELEASE_DATE: &str = include_str!(concat!(env!("OUT_DIR"), "/release_date.txt"));
    /// `ENTITLE_APP_VERSION` at build time, or "".
    pub const APP_VERSION: &str = include_str!(concat!(env!("OUT_DIR"), "/app_version.txt"));
    /// `ENTITLE_APP_CHANNEL` at build time, or "".
    pub const APP_CHANNEL: &str = include_str!(concat!(env!("OUT_DIR"), "/app_channel.txt"));

    /// Whether this build trusts only its own keys.
    pub const fn has_keys() -> bool {
        !KEYS.is_empty()
    }
}

/// Where an install's state lives (docs/semantics.md#durability-and-sharing).
#[derive(Debug, Clone)]
pub enum Location {
    /// A state directory (the file store).
    Dir(PathBuf),
    /// A namespace in a PostgreSQL database.
    Postgres {
        /// The database's URL (it may hold a password: never shown).
        url: String,
        /// The install within it.
        namespace: String,
    },
}

impl Location {
    /// `--store URL`: `postgres://` and `postgresql://` select PostgreSQL,
    /// `file://DIR` or a plain path the file store.
    pub fn parse(url: &str, namespace: &str) -> Result<Location, Error> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Location::Postgres {
                url: url.to_owned(),
                namespace: namespace.to_owned(),
            });
        }
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(Location::Dir(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(Error::InvalidArgument(format!(
                "--store takes postgres://, postgresql://, file:// or a directory, not `{scheme}://`"
            )));
        }
        Ok(Location::Dir(PathBuf::from(url)))
    }
}

/// A PostgreSQL URL as output shows it: without its password (if it
/// holds one) or its parameters.
pub fn shown_url(url: &str) -> String {
    let shown = match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((credentials, host)) => {
                let user = credentials.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}@{host}")
            }
            None => url.to_owned(),
        },
        None => url.to_owned(),
    };
    shown.split('?').next().unwrap_or_default().to_owned()
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Dir(dir) => write!(f, "{}", dir.display()),
            Location::Postgres { url, namespace } => {
                write!(f, "{} (namespace `{namespace}`)", shown_url(url))
            }
        }
    }
}

/// An opened store, of either kind.
pub enum Opened {
    /// A state directory.
    File(Box<FileStore>),
    /// A namespace in PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(Box<PgStore>),
}

impl Opened {
    /// Opens the state at `location`; a directory or a namespace is made
    /// if `create` (only `init` does), else it must exist
    /// (`STATE_MISSING`). An install exists once `init` has recorded its
    /// settings.
    pub fn open(location: &Location, create: bool) -> Result<Opened, Error> {
        match location {
            Location::Dir(dir) if create => Ok(Opened::File(Box::new(FileStore::create(dir)?))),
            Location::Dir(dir) => Ok(Opened::File(Box::new(FileStore::open(dir)?))),
            #[cfg(feature = "postgres")]
            Location::Postgres { url, namespace } => {
                let store = match PgStore::open(url, namespace) {
                    Err(Error::StateMissing { .. }) if create => {
                        match PgStore::create(url, namespace) {
                            // Made by another `init` meanwhile.
                            Err(Error::StateExists { .. }) => PgStore::open(url, namespace),
                            created => created,
                        }
                    }
                    opened => opened,
                }?;
                Ok(Opened::Postgres(Box::new(store)))
            }
            #[cfg(not(feature = "postgres"))]
            Location::Postgres { .. } => Err(Error::InvalidArgument(
                "--store names a PostgreSQL database, and this entitle was built without \
                 PostgreSQL support: build it with `cargo build --release --features postgres`"
                    .into(),
            )),
        }
    }

    /// The settings alone.
    pub fn settings(&self) -> Result<entitle::store::Settings, Error> {
        match self {
            Opened::File(store) => store.settings(),
            #[cfg(feature = "postgres")]
            Opened::Postgres(store) => store.settings(),
        }
    }

    /// Builds the engine on this store.
    pub fn attach(self, builder: EngineBuilder) -> EngineBuilder {
        match self {
            Opened::File(store) => builder.store(*store),
            #[cfg(feature = "postgres")]
            Opened::Postgres(store) => builder.store(*store),
        }
    }

    /// Builds the vendor's books on this store.
    pub fn attach_books(self, builder: BooksBuilder) -> BooksBuilder {
        match self {
            Opened::File(store) => builder.store(*store),
            #[cfg(feature = "postgres")]
            Opened::Postgres(store) => builder.store(*store),
        }
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
    /// Reads the settings of the state at `location`. A state that `init`
    /// never made (or finished) is missing, not corrupt: running `init`
    /// mends it.
    pub fn read(store: &Opened, location: &Location) -> Result<Self, Error> {
        let settings = store.settings()?;
        match (settings.product, settings.install) {
            (Some(product), Some(install)) => Ok(Settings { product, install }),
            (Some(product), None) if built_in::has_keys() => Ok(Settings {
                product,
                install: InstallSettings::default(),
            }),
            _ => Err(Error::StateMissing {
                path: location.to_string(),
            }),
        }
    }

    /// The keys this CLI trusts: those compiled into it, if any (then the
    /// state's are ignored), else those `init` recorded.
    pub fn keyring(&self, location: &Location) -> Result<Keyring, Error> {
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
            path: location.to_string(),
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

    /// The application version in force, for licenses with `versions`:
    /// the build's own, if compiled in, else the one `init` recorded.
    pub fn app_version(&self) -> Option<&str> {
        match built_in::APP_VERSION {
            "" => self.install.version.as_deref(),
            compiled => Some(compiled),
        }
    }

    /// The release channel in force, for licenses with `channels`: the
    /// build's own, if compiled in, else the one `init` recorded.
    pub fn app_channel(&self) -> Option<&str> {
        match built_in::APP_CHANNEL {
            "" => self.install.channel.as_deref(),
            compiled => Some(compiled),
        }
    }

    /// The device this install names on `here` (this machine's
    /// fingerprint, computed afresh; `None` where the system gives no
    /// machine id): the one `init --fingerprint` named, or the machine
    /// itself; and whether the state says it was made on another machine.
    ///
    /// Neither decides a right (docs/semantics.md#what-stored-state-is-trusted): the engine binds a
    /// named device to the machine computed here, and only activations
    /// made on this machine (certificates saying so) grant. `moved` only
    /// words a `NOT_ACTIVATED` answer. With no machine id there is no
    /// device, and node-locked rights are denied (`DEVICE_UNKNOWN`).
    pub fn device_on(&self, here: Option<&str>) -> (Option<String>, bool) {
        let here = here.map(str::to_owned);
        let device = here.as_ref().map(|machine| {
            self.install
                .device
                .clone()
                .unwrap_or_else(|| machine.clone())
        });
        let moved = self
            .install
            .machine
            .as_ref()
            .is_some_and(|home| Some(home) != here.as_ref());
        (device, moved)
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

/// Opens the state as an engine: `STATE_MISSING` if `init` never ran
/// there.
pub fn open_engine(globals: &Globals) -> Result<Engine, Failure> {
    Ok(open_install(globals)?.engine)
}

/// Opens the state: the engine and the device it is.
pub fn open_install(globals: &Globals) -> Result<Install, Error> {
    open_install_with(globals, false)
}

/// Opens the state, with the engine refreshing its view of the state in
/// the background or not (one command, one mutation: nothing to keep
/// fresh afterwards; a server runs for long).
pub fn open_install_with(globals: &Globals, refresh: bool) -> Result<Install, Error> {
    let location = globals.location()?;
    let store = Opened::open(&location, false)?;
    let settings = Settings::read(&store, &location)?;
    let here = machine_fingerprint();
    let (device, moved) = settings.device_on(here.as_deref());
    let builder = Engine::builder(settings.product.as_str()).keyring(settings.keyring(&location)?);
    let mut builder = store
        .attach(builder)
        .virtual_machine(detect_virtual_machine())
        .background_refresh(refresh);
    // The machine, computed here; the device named for it, if any.
    if let Some(here) = &here {
        builder = builder.fingerprint(here.as_str());
    }
    if let Some(named) = &settings.install.device {
        builder = builder.named_device(named.as_str());
    }
    if let Some(date) = settings.release_date()? {
        builder = builder.release_date(date);
    }
    if let Some(version) = settings.app_version() {
        builder = builder.version(version);
    }
    if let Some(channel) = settings.app_channel() {
        builder = builder.channel(channel);
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

/// Opens the state as the vendor's books (`respond`, `receipt`, `ingest`,
/// `activation list`): `STATE_MISSING` if `init` never ran there. The
/// books are no device: this machine's fingerprint and virtual-machine
/// detection play no part.
pub fn open_books(globals: &Globals) -> Result<Books, Error> {
    open_books_with(globals, false)
}

/// The vendor's books, refreshing their view of the state in the
/// background when `refresh` (a long-running service: another process
/// may change the books meanwhile).
pub fn open_books_with(globals: &Globals, refresh: bool) -> Result<Books, Error> {
    let location = globals.location()?;
    let store = Opened::open(&location, false)?;
    let settings = Settings::read(&store, &location)?;
    let builder = Books::builder(settings.product.as_str())
        .keyring(settings.keyring(&location)?)
        .background_refresh(refresh);
    let builder = store.attach_books(builder);
    let builder = match globals.now {
        Some(now) => builder.clock(ManualClock::new(now)),
        None => builder.clock(SystemClock),
    };
    builder.build()
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
