//! Collections.

use emporium_kernel::ids::CollectionId;
use emporium_kernel::{Cursor, Page, Violations};
use uuid::Uuid;

use crate::api::Collection;
use crate::error::CatalogError;
use crate::events;
use crate::store::{self, CollectionRow, HandleTable};

use super::{
    CatalogService, MAX_PAGE, check_group_fields, check_version, collection_of, new_handle,
    unique_or,
};
use crate::api::CollectionInput;

impl CatalogService {
    /// Collections, oldest first.
    pub async fn list_collections(
        &self,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<Collection>, CatalogError> {
        let mut v = Violations::new();
        let limit = v.check(
            "/limit",
            emporium_kernel::cursor::page_limit(limit, 50, MAX_PAGE),
        );
        let after = match cursor {
            Some(c) => v.check("/cursor", Cursor::decode::<Uuid>(c)),
            None => Some(Uuid::nil()),
        };
        v.finish().map_err(CatalogError::Invalid)?;
        let limit = limit.unwrap_or(50);
        let mut conn = self.db.read().await?;
        let mut rows =
            store::list_collections(&mut conn, after.unwrap_or_default(), limit + 1).await?;
        let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_cursor = if more {
            rows.last().map(|r| Cursor::encode(&r.id).into_string())
        } else {
            None
        };
        Ok(Page {
            items: rows.iter().map(collection_of).collect(),
            next_cursor,
        })
    }

    /// One collection.
    pub async fn get_collection(&self, id: CollectionId) -> Result<Collection, CatalogError> {
        let mut conn = self.db.read().await?;
        store::get_collection(&mut conn, id.0)
            .await?
            .map(|r| collection_of(&r))
            .ok_or(CatalogError::CollectionNotFound)
    }

    /// Creates a collection.
    pub async fn create_collection(
        &self,
        input: CollectionInput,
    ) -> Result<Collection, CatalogError> {
        let now = self.clock.now();
        let title = input.title.unwrap_or_default().trim().to_owned();
        let description = input.description.unwrap_or_default().trim().to_owned();
        check_group_fields(
            ("/title", Some(&title)),
            Some(&description),
            input.handle.as_deref(),
        )?;
        let id = CollectionId::generate().0;
        let mut tx = self.db.begin_write().await?;
        let handle = new_handle(
            &mut tx,
            HandleTable::Collections,
            id,
            input.handle,
            &title,
            CatalogError::CategoryHandleTaken,
        )
        .await?;
        let row = CollectionRow {
            id,
            handle,
            title,
            description,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        store::upsert_collection(&mut tx, &row)
            .await
            .map_err(|e| unique_or(e, || CatalogError::CategoryHandleTaken(row.handle.clone())))?;
        let collection = collection_of(&row);
        tx.record(&events::CollectionCreated(collection.clone()), 1, now)
            .await?;
        tx.commit().await?;
        Ok(collection)
    }

    /// Changes a collection; its products get new documents when the title or handle changed.
    pub async fn update_collection(
        &self,
        id: CollectionId,
        input: CollectionInput,
        if_match: Option<i64>,
    ) -> Result<Collection, CatalogError> {
        let now = self.clock.now();
        check_group_fields(
            ("/title", input.title.as_deref()),
            input.description.as_deref(),
            input.handle.as_deref(),
        )?;
        let mut tx = self.db.begin_write().await?;
        let mut row = store::get_collection(&mut tx, id.0)
            .await?
            .ok_or(CatalogError::CollectionNotFound)?;
        check_version(row.version, if_match)?;
        let before = (row.handle.clone(), row.title.clone());
        if let Some(h) = input.handle {
            if h != row.handle
                && store::handle_in_use(&mut tx, HandleTable::Collections, &h, id.0).await?
            {
                return Err(CatalogError::CategoryHandleTaken(h));
            }
            row.handle = h;
        }
        if let Some(t) = input.title {
            row.title = t.trim().to_owned();
        }
        if let Some(d) = input.description {
            row.description = d.trim().to_owned();
        }
        row.version += 1;
        row.updated_at = now;
        store::upsert_collection(&mut tx, &row).await?;
        let collection = collection_of(&row);
        tx.record(
            &events::CollectionUpdated(collection.clone()),
            row.version,
            now,
        )
        .await?;
        if before != (row.handle.clone(), row.title.clone()) {
            let products = store::products_in_collection(&mut tx, id.0).await?;
            self.refresh_products(&mut tx, &products).await?;
        }
        tx.commit().await?;
        Ok(collection)
    }

    /// Deletes a collection; its products leave it.
    pub async fn delete_collection(
        &self,
        id: CollectionId,
        if_match: Option<i64>,
    ) -> Result<(), CatalogError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let row = store::get_collection(&mut tx, id.0)
            .await?
            .ok_or(CatalogError::CollectionNotFound)?;
        check_version(row.version, if_match)?;
        let products = store::products_in_collection(&mut tx, id.0).await?;
        store::delete_collection(&mut tx, id.0).await?;
        tx.record(&events::CollectionDeleted { id }, row.version + 1, now)
            .await?;
        self.refresh_products(&mut tx, &products).await?;
        tx.commit().await?;
        Ok(())
    }
}
