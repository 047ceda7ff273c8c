//! Released migrations are frozen: `crates/db/migrations.sha256` lists every migration file of
//! every crate with its SHA-256 (the format `sha256sum` writes), and the files must match it.
//! sqlx records each applied migration's checksum and refuses to start on a database whose
//! history no longer matches the files, so an edited migration breaks every database migrated
//! before the edit: a later change goes into a new migration. A new file must be added to the
//! list in the commit that adds it (`sha256sum PATH >> crates/db/migrations.sha256`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use emporium_db::{Db, DbOptions, Migration};
use emporium_kernel::token::sha256_hex;

/// Where the list lives, relative to the workspace root.
const LIST: &str = "crates/db/migrations.sha256";

#[test]
fn every_migration_file_matches_its_released_checksum() {
    let root = workspace_root();
    let listed = std::fs::read_to_string(root.join(LIST)).expect("the checksum list is readable");
    let files = migration_files(&root);
    assert!(
        !files.is_empty(),
        "no migration file found under {}",
        root.display()
    );
    let problems = frozen_problems(&listed, &files);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn an_edited_a_removed_and_an_unlisted_migration_each_fail_with_what_to_do() {
    let listed = format!(
        "{}  crates/a/migrations/sqlite/1_a.sql\n{}  crates/a/migrations/sqlite/2_b.sql\n",
        sha256_hex("CREATE TABLE a (id INTEGER);\n"),
        sha256_hex("CREATE TABLE b (id INTEGER);\n"),
    );
    let files = BTreeMap::from([
        (
            "crates/a/migrations/sqlite/1_a.sql".to_owned(),
            "CREATE TABLE a (id INTEGER, x TEXT);\n".to_owned(),
        ),
        (
            "crates/a/migrations/sqlite/3_c.sql".to_owned(),
            "CREATE TABLE c (id INTEGER);\n".to_owned(),
        ),
    ]);

    let problems = frozen_problems(&listed, &files);

    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems[0].contains("1_a.sql was changed") && problems[0].contains("new migration"),
        "{}",
        problems[0]
    );
    assert!(
        problems[1].contains("2_b.sql was removed") && problems[1].contains("new migration"),
        "{}",
        problems[1]
    );
    assert!(
        problems[2].contains("3_c.sql is not listed")
            && problems[2].contains(&sha256_hex("CREATE TABLE c (id INTEGER);\n")),
        "{}",
        problems[2]
    );
}

#[test]
fn a_list_that_matches_the_files_has_no_problem() {
    let text = "CREATE TABLE a (id INTEGER);\n";
    let listed = format!(
        "{}  crates/a/migrations/sqlite/1_a.sql\n\n",
        sha256_hex(text)
    );
    let files = BTreeMap::from([(
        "crates/a/migrations/sqlite/1_a.sql".to_owned(),
        text.to_owned(),
    )]);
    assert_eq!(frozen_problems(&listed, &files), Vec::<String>::new());
}

/// Ordering's `20261126000600_one_checkout_per_cart` as it was released: what databases
/// migrated since then recorded the checksum of.
const RELEASED_ONE_CHECKOUT_PER_CART: &str = "\
-- A cart is checked out once. At most one checkout per cart may be anything but failed: a
-- second Idempotency-Key for a cart that is being (or was) checked out is refused, where it
-- used to reserve, charge and place a second order. A failed checkout was undone, so the
-- shopper may try again under a new key.
CREATE UNIQUE INDEX checkouts_one_per_cart ON checkouts (cart_id) WHERE state <> 'failed';
";

const ORDERING: Migration = Migration {
    version: 20261126000500,
    description: "ordering",
    sqlite: include_str!("../../ordering/migrations/sqlite/20261126000500_ordering.sql"),
    postgres: include_str!("../../ordering/migrations/postgres/20261126000500_ordering.sql"),
};

const ONE_CHECKOUT_PER_CART: Migration = Migration {
    version: 20261126000600,
    description: "one checkout per cart",
    sqlite: include_str!(
        "../../ordering/migrations/sqlite/20261126000600_one_checkout_per_cart.sql"
    ),
    postgres: include_str!(
        "../../ordering/migrations/postgres/20261126000600_one_checkout_per_cart.sql"
    ),
};

const CHECKOUTS_BY_ORDER: Migration = Migration {
    version: 20261201230000,
    description: "checkouts by order",
    sqlite: include_str!("../../ordering/migrations/sqlite/20261201230000_checkouts_by_order.sql"),
    postgres: include_str!(
        "../../ordering/migrations/postgres/20261201230000_checkouts_by_order.sql"
    ),
};

#[tokio::test]
async fn a_database_migrated_with_the_released_checkout_schema_upgrades_and_gains_the_order_index()
{
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&DbOptions {
        url: format!("sqlite:{}", dir.path().join("t.db").display()),
        max_connections: 2,
        sqlite_synchronous_full: false,
        acquire_timeout: Duration::from_secs(60),
        sqlite_writer_cache_mib: 4,
        sqlite_checkpoint_mib: 40,
    })
    .await
    .unwrap();
    let released = Migration {
        sqlite: RELEASED_ONE_CHECKOUT_PER_CART,
        postgres: RELEASED_ONE_CHECKOUT_PER_CART,
        ..ONE_CHECKOUT_PER_CART
    };
    db.migrate(&[&[ORDERING, released]]).await.unwrap();

    db.migrate(&[&[ORDERING, ONE_CHECKOUT_PER_CART, CHECKOUTS_BY_ORDER]])
        .await
        .expect("the released history matches the files, and the new migration applies");

    let mut conn = db.read().await.unwrap();
    let indexes: Vec<(String,)> = emporium_db::run!(&mut conn, |c| sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'checkouts_order'"
    )
    .fetch_all(c)
    .await
    .map_err(emporium_db::DbError::from))
    .unwrap();
    assert_eq!(indexes.len(), 1, "the order index exists after the upgrade");
}

/// What is wrong between the checksum list `listed` and the migration `files` (path relative
/// to the workspace root, with `/`, to contents), one sentence each, in path order.
fn frozen_problems(listed: &str, files: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut released = BTreeMap::new();
    for (n, line) in listed.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match line.split_once("  ") {
            Some((hash, path)) => {
                released.insert(path.trim().to_owned(), hash.trim().to_owned());
            }
            None => problems.push(format!(
                "{LIST} line {}: expected `SHA256  PATH` (as sha256sum writes it), got `{line}`",
                n + 1
            )),
        }
    }
    let mut paths: Vec<&String> = released.keys().chain(files.keys()).collect();
    paths.sort();
    paths.dedup();
    for path in paths {
        match (released.get(path), files.get(path)) {
            (Some(hash), Some(text)) if *hash == sha256_hex(text) => {}
            (Some(_), Some(_)) => problems.push(format!(
                "{path} was changed after its release: a database migrated with it refuses to \
                 start (checksum mismatch). Restore its released text and put the change in a \
                 new migration (a later timestamp)"
            )),
            (Some(_), None) => problems.push(format!(
                "{path} was removed after its release: databases that applied it keep it in \
                 their history. Restore it and undo what it did in a new migration instead"
            )),
            (None, Some(text)) => problems.push(format!(
                "{path} is not listed in {LIST}: add the line `{}  {path}` \
                 (sha256sum {path} >> {LIST}) in the commit that adds the migration",
                sha256_hex(text)
            )),
            (None, None) => {}
        }
    }
    problems
}

/// The workspace root (this crate is `crates/db`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every file under a `crates/*/migrations` folder, by path relative to `root`.
fn migration_files(root: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let crates = std::fs::read_dir(root.join("crates")).expect("crates/ is readable");
    for krate in crates {
        let migrations = krate.expect("a crate folder").path().join("migrations");
        if migrations.is_dir() {
            collect(root, &migrations, &mut files);
        }
    }
    files
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).expect("a migrations folder is readable") {
        let path = entry.expect("a migrations entry").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let relative = path
                .strip_prefix(root)
                .expect("under the root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let text = std::fs::read_to_string(&path).expect("a migration is UTF-8 text");
            files.insert(relative, text);
        }
    }
}
