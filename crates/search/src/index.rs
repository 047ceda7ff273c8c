//! The search index: a tantivy index in a folder, its reader, its one writer, the category
//! registry and the checkpoint (the feed position of the last applied event, stored as the
//! payload of each commit so both move together).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde::{Deserialize, Serialize};
use tantivy::collector::{Count, DocSetCollector, TopDocs};
use tantivy::directory::{Directory, DirectoryLock, Lock, MmapDirectory};
use tantivy::query::TermQuery;
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::{
    Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, Searcher, TantivyDocument,
    TantivyError, Term,
};
use tokio::sync::watch;

use crate::contract::CategoryData;
use crate::document::Registry;
use crate::error::SearchError;
use crate::schema::{self, Fields, KIND_CATEGORY};

/// Memory the writer may use before it flushes a segment.
const WRITER_MEMORY: usize = 50_000_000;
/// Decompressed 16 KiB blocks of stored documents each segment keeps.
const DOC_STORE_CACHE_BLOCKS: usize = 8;
/// The lock file that marks the index as written by a running process.
const CLAIM_LOCK: &str = ".emporium-writer.lock";

/// The payload of every commit.
#[derive(Debug, Serialize, Deserialize)]
struct CommitPayload {
    /// Feed position of the last event the commit includes.
    position: i64,
    /// [`schema::FORMAT`] of the index that made the commit.
    format: u32,
}

/// The product search index. Shared (`Arc`) by the HTTP handlers, which query it, and the
/// projector, which writes it. Every method that touches the index blocks: call it from a
/// blocking thread (`spawn_blocking`), never directly on an async worker.
pub struct SearchIndex {
    pub(crate) index: Index,
    pub(crate) reader: IndexReader,
    pub(crate) fields: Fields,
    /// Created on the first write and closed again when the projector is idle. Locked only on
    /// blocking threads, never across an `.await`.
    writer: Mutex<Option<IndexWriter>>,
    /// Taken on the first write and held for good, so that no other process writes the index
    /// while this one may (the writer's own lock comes and goes with the writer). An index
    /// opened only to be read takes no lock.
    claim: Mutex<Option<DirectoryLock>>,
    /// Every known category; replaced whole after each commit.
    categories: RwLock<Arc<Registry>>,
    /// The checkpoint, watched by whoever waits for the index to catch up.
    checkpoint: watch::Sender<i64>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("checkpoint", &self.checkpoint())
            .finish_non_exhaustive()
    }
}

impl SearchIndex {
    /// Opens the index persisted in `dir`, creating the folder and an empty index when needed.
    ///
    /// An index written by an incompatible version (another schema or format) is replaced by an
    /// empty one whose checkpoint is 0, so the projector rebuilds it from the start of the feed.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, SearchError> {
        std::fs::create_dir_all(dir.as_ref())?;
        let directory = MmapDirectory::open(dir.as_ref())?;
        let (schema, fields) = Fields::schema();
        let index = match Index::builder()
            .schema(schema.clone())
            .open_or_create(directory.clone())
        {
            Ok(index) if payload_of(&index).is_ok() => index,
            Ok(_) | Err(TantivyError::SchemaError(_)) => {
                tracing::warn!(
                    dir = %dir.as_ref().display(),
                    "search index of another format; starting an empty one"
                );
                Index::create(directory, schema, IndexSettings::default())?
            }
            Err(e) => return Err(e.into()),
        };
        Self::from_index(index, fields)
    }

    /// An empty index held in memory (tests, tools).
    pub fn open_in_ram() -> Result<Self, SearchError> {
        let (schema, fields) = Fields::schema();
        Self::from_index(Index::create_in_ram(schema), fields)
    }

    fn from_index(index: Index, fields: Fields) -> Result<Self, SearchError> {
        schema::register_tokenizers(index.tokenizers());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            // A page reads a couple of dozen scattered documents: a few decompressed blocks per
            // segment serve repeated pages, the default hundred only hold memory.
            .doc_store_cache_num_blocks(DOC_STORE_CACHE_BLOCKS)
            .try_into()?;
        let checkpoint = payload_of(&index)?.map_or(0, |p| p.position);
        let this = Self {
            index,
            reader,
            fields,
            writer: Mutex::new(None),
            claim: Mutex::new(None),
            categories: RwLock::new(Arc::new(Registry::new())),
            checkpoint: watch::Sender::new(checkpoint),
        };
        let registry = this.load_registry(&this.reader.searcher())?;
        this.set_registry(registry);
        Ok(this)
    }

    /// The feed position of the last event applied and committed (0 before any).
    pub fn checkpoint(&self) -> i64 {
        *self.checkpoint.borrow()
    }

    /// Follows the checkpoint: the receiver sees each commit's position once searches can see
    /// its changes.
    pub fn watch_checkpoint(&self) -> watch::Receiver<i64> {
        self.checkpoint.subscribe()
    }

    /// How many published products the last commit holds: what searches can find.
    pub fn published_count(&self) -> Result<usize, SearchError> {
        let query = TermQuery::new(
            Term::from_field_text(self.fields.status, "published"),
            IndexRecordOption::Basic,
        );
        Ok(self.reader.searcher().search(&query, &Count)?)
    }

    /// The categories as of the last commit.
    pub(crate) fn registry(&self) -> Arc<Registry> {
        self.categories
            .read()
            .map_or_else(|p| p.into_inner().clone(), |r| r.clone())
    }

    fn set_registry(&self, registry: Registry) {
        let mut slot = self.categories.write().unwrap_or_else(|p| p.into_inner());
        *slot = Arc::new(registry);
    }

    /// Runs `work` with the writer, then commits with `position` as the checkpoint and makes
    /// the change visible to searches. On failure every uncommitted change is dropped.
    pub(crate) fn write<T>(
        &self,
        work: impl FnOnce(&IndexWriter, i64) -> Result<Option<(i64, T)>, SearchError>,
    ) -> Result<Option<T>, SearchError> {
        let mut guard = self.lock_writer()?;
        let Some(writer) = guard.as_mut() else {
            return Err(SearchError::Corrupt("the index writer is missing".into()));
        };
        let outcome = work(writer, self.checkpoint()).and_then(|done| {
            let Some((position, value)) = done else {
                return Ok(None);
            };
            let mut prepared = writer.prepare_commit()?;
            let payload = CommitPayload {
                position,
                format: schema::FORMAT,
            };
            prepared.set_payload(&serde_json::to_string(&payload).unwrap_or_default());
            prepared.commit()?;
            Ok(Some((position, value)))
        });
        match outcome {
            Ok(Some((position, value))) => {
                self.reader.reload()?;
                self.checkpoint.send_replace(position);
                Ok(Some(value))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                if writer.rollback().is_err() {
                    // A writer that cannot roll back is dropped; the next write opens a new one.
                    *guard = None;
                }
                Err(e)
            }
        }
    }

    /// Moves the checkpoint to `position` in memory only, for events that changed no
    /// document; the next commit persists a position at or after it.
    pub(crate) fn advance(&self, position: i64) {
        self.checkpoint.send_if_modified(|current| {
            let moved = position > *current;
            if moved {
                *current = position;
            }
            moved
        });
    }

    /// Publishes the registry a commit just wrote.
    pub(crate) fn publish_registry(&self, registry: Registry) {
        self.set_registry(registry);
    }

    /// Closes the writer, once its merges are done, to give back the memory it keeps for
    /// indexing (the next write opens a new one). A projector that has caught up calls it, so
    /// a burst of events does not leave its buffers behind.
    pub(crate) fn release_writer(&self) -> Result<(), SearchError> {
        let mut guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(writer) = guard.take() {
            writer.wait_merging_threads()?;
        }
        Ok(())
    }

    fn lock_writer(&self) -> Result<MutexGuard<'_, Option<IndexWriter>>, SearchError> {
        let mut guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let mut claim = self.claim.lock().unwrap_or_else(|p| p.into_inner());
            if claim.is_none() {
                let lock = Lock {
                    filepath: PathBuf::from(CLAIM_LOCK),
                    is_blocking: false,
                };
                let taken = self.index.directory().acquire_lock(&lock).map_err(|e| {
                    TantivyError::LockFailure(e, Some("another process writes the index".into()))
                })?;
                *claim = Some(taken);
            }
            *guard = Some(self.index.writer_with_num_threads(1, WRITER_MEMORY)?);
        }
        Ok(guard)
    }

    /// Empties the index and its registry and sets the checkpoint to 0, in one commit.
    pub(crate) fn wipe(&self) -> Result<(), SearchError> {
        self.write(|writer, _| {
            writer.delete_all_documents()?;
            Ok(Some((0, ())))
        })?;
        self.set_registry(Registry::new());
        Ok(())
    }

    /// The one document whose key is `key`.
    pub(crate) fn find(
        &self,
        searcher: &Searcher,
        key: &str,
    ) -> Result<Option<TantivyDocument>, SearchError> {
        let query = TermQuery::new(
            Term::from_field_text(self.fields.key, key),
            IndexRecordOption::Basic,
        );
        let top = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?;
        match top.first() {
            Some((_, address)) => Ok(Some(searcher.doc(*address)?)),
            None => Ok(None),
        }
    }

    /// Every document having `value` in the untokenized `field`, in index order.
    pub(crate) fn all_with(
        &self,
        searcher: &Searcher,
        field: Field,
        value: &str,
    ) -> Result<Vec<TantivyDocument>, SearchError> {
        let query = TermQuery::new(
            Term::from_field_text(field, value),
            IndexRecordOption::Basic,
        );
        let mut addresses: Vec<_> = searcher
            .search(&query, &DocSetCollector)?
            .into_iter()
            .collect();
        addresses.sort();
        addresses
            .into_iter()
            .map(|a| searcher.doc(a).map_err(SearchError::from))
            .collect()
    }

    /// The stored source of a document.
    pub(crate) fn source_of<'d>(&self, doc: &'d TantivyDocument) -> Result<&'d str, SearchError> {
        doc.get_first(self.fields.source)
            .and_then(|v| v.as_str())
            .ok_or_else(|| SearchError::Corrupt("a document has no source".into()))
    }

    fn load_registry(&self, searcher: &Searcher) -> Result<Registry, SearchError> {
        let mut registry = Registry::new();
        for doc in self.all_with(searcher, self.fields.kind, KIND_CATEGORY)? {
            let category: CategoryData = serde_json::from_str(self.source_of(&doc)?)
                .map_err(|e| SearchError::Corrupt(format!("category document: {e}")))?;
            registry.insert(category.id, category);
        }
        Ok(registry)
    }
}

/// The payload of the last commit: `Ok(None)` before any commit, an error when the index was
/// written by an incompatible version.
fn payload_of(index: &Index) -> Result<Option<CommitPayload>, SearchError> {
    let Some(text) = index.load_metas()?.payload else {
        return Ok(None);
    };
    match serde_json::from_str::<CommitPayload>(&text) {
        Ok(p) if p.format == schema::FORMAT => Ok(Some(p)),
        _ => Err(SearchError::Corrupt(format!(
            "commit payload of another format: {text}"
        ))),
    }
}
