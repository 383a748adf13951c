//! `entitle namespace ...`: the installs one PostgreSQL store holds, each
//! under its own namespace. Only `init` makes one; these list and delete
//! them.

use clap::{Args, Subcommand};
use entitle::Error;
use serde_json::json;

use crate::output::{Failure, Outcome};
use crate::state::{shown_url, Location};
use crate::Globals;

/// `entitle namespace ...`.
#[derive(Debug, Subcommand)]
pub enum NamespaceCommand {
    /// List the namespaces in the PostgreSQL store (--store), one per
    /// line.
    List,
    /// Delete a namespace and everything in it, for good (with --yes).
    Remove(RemoveArgs),
}

/// `entitle namespace remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The namespace to delete.
    #[arg(value_name = "NS")]
    namespace: String,
    /// Delete it: its licenses, users, activations, counters and books
    /// are gone for good. Without it, nothing is deleted.
    #[arg(long)]
    yes: bool,
}

/// Runs one `namespace` command.
pub fn run(command: NamespaceCommand, globals: &Globals) -> Result<Outcome, Failure> {
    let url = match globals.location()? {
        Location::Postgres { url, .. } => url,
        Location::Dir(dir) => {
            return Err(Error::InvalidArgument(format!(
                "`entitle namespace` needs a PostgreSQL store, and the state here is the \
                 directory {}, which holds one install: name the database with --store \
                 postgres://USER@HOST:PORT/DATABASE",
                dir.display()
            ))
            .into())
        }
    };
    match command {
        NamespaceCommand::List => Ok(list(&url)?),
        NamespaceCommand::Remove(args) => Ok(remove(&url, &args)?),
    }
}

fn list(url: &str) -> Result<Outcome, Error> {
    let names = store::namespaces(url)?;
    let shown = shown_url(url);
    let mut human = String::new();
    for name in &names {
        human.push_str(name);
        human.push('\n');
    }
    let mut outcome = Outcome::new(json!({"store": shown, "namespaces": names}), human);
    if names.is_empty() {
        // On stderr: stdout stays one name per line for scripts.
        outcome = outcome.with_note(format!(
            "No namespace in {shown}. Make one with `entitle --store URL --namespace NS init`."
        ));
    }
    Ok(outcome)
}

fn remove(url: &str, args: &RemoveArgs) -> Result<Outcome, Error> {
    let shown = shown_url(url);
    if !args.yes {
        // A typo is said as such (`STATE_MISSING`) before --yes is asked for.
        store::exists(url, &args.namespace)?;
        return Err(Error::InvalidArgument(format!(
            "`entitle namespace remove` deletes namespace `{}` in {shown} and everything in it \
             (licenses, users, activations, counters, books) for good; nothing was deleted. \
             Add --yes to delete it",
            args.namespace
        )));
    }
    store::remove(url, &args.namespace)?;
    Ok(Outcome::new(
        json!({"store": shown, "namespace": args.namespace, "removed": true}),
        format!(
            "Removed namespace `{}` from {shown}: its licenses, users, activations, counters \
             and books are gone. Programs still open on it fail at their next change.",
            args.namespace
        ),
    ))
}

/// The store's calls, or their refusal in a build without PostgreSQL.
#[cfg(feature = "postgres")]
mod store {
    use entitle::store::PgStore;
    use entitle::Error;

    pub fn namespaces(url: &str) -> Result<Vec<String>, Error> {
        PgStore::namespaces(url)
    }

    pub fn remove(url: &str, namespace: &str) -> Result<(), Error> {
        PgStore::remove(url, namespace)
    }

    /// `STATE_MISSING` unless `namespace` exists.
    pub fn exists(url: &str, namespace: &str) -> Result<(), Error> {
        PgStore::open(url, namespace).map(drop)
    }
}

#[cfg(not(feature = "postgres"))]
mod store {
    use entitle::Error;

    fn unsupported() -> Error {
        Error::InvalidArgument(
            "--store names a PostgreSQL database, and this entitle was built without \
             PostgreSQL support: build it with `cargo build --release --features postgres`"
                .into(),
        )
    }

    pub fn namespaces(_url: &str) -> Result<Vec<String>, Error> {
        Err(unsupported())
    }

    pub fn remove(_url: &str, _namespace: &str) -> Result<(), Error> {
        Err(unsupported())
    }

    pub fn exists(_url: &str, _namespace: &str) -> Result<(), Error> {
        Err(unsupported())
    }
}
