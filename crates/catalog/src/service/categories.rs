//! The category tree.

use emporium_kernel::ids::CategoryId;

use crate::api::Category;
use crate::error::CatalogError;
use crate::events;
use crate::store::{self, CategoryRow, HandleTable};

use super::{
    CatalogService, category_of, check_group_fields, check_version, new_handle, unique_or,
};
use crate::api::{CategoryPatch, NewCategory};

impl CatalogService {
    /// Every category, flat, parents before children.
    pub async fn list_categories(&self) -> Result<Vec<Category>, CatalogError> {
        let mut conn = self.db.read().await?;
        store::list_categories(&mut conn)
            .await?
            .iter()
            .map(category_of)
            .collect()
    }

    /// One category.
    pub async fn get_category(&self, id: CategoryId) -> Result<Category, CatalogError> {
        let mut conn = self.db.read().await?;
        let row = store::get_category(&mut conn, id.0)
            .await?
            .ok_or(CatalogError::CategoryNotFound)?;
        category_of(&row)
    }

    /// Creates a category under `parent_id` (or at the root).
    pub async fn create_category(&self, input: NewCategory) -> Result<Category, CatalogError> {
        let now = self.clock.now();
        let name = input.name.trim().to_owned();
        check_group_fields(
            ("/name", Some(&name)),
            Some(&input.description),
            input.handle.as_deref(),
        )?;
        let mut tx = self.db.begin_write().await?;
        let id = CategoryId::generate().0;
        let parent_path = match input.parent_id {
            Some(p) => {
                store::get_category(&mut tx, p.0)
                    .await?
                    .ok_or_else(|| {
                        CatalogError::field(
                            "/parent_id",
                            "unknown_category",
                            "no category with this id",
                        )
                    })?
                    .path
            }
            None => "/".to_owned(),
        };
        let handle = new_handle(
            &mut tx,
            HandleTable::Categories,
            id,
            input.handle,
            &name,
            CatalogError::CategoryHandleTaken,
        )
        .await?;
        let row = CategoryRow {
            id,
            handle,
            name,
            description: input.description.trim().to_owned(),
            parent_id: input.parent_id.map(|p| p.0),
            position: input.position,
            path: format!("{parent_path}{}/", id.simple()),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        store::insert_category(&mut tx, &row)
            .await
            .map_err(|e| unique_or(e, || CatalogError::CategoryHandleTaken(row.handle.clone())))?;
        let category = category_of(&row)?;
        tx.record(&events::CategoryCreated(category.clone()), 1, now)
            .await?;
        tx.commit().await?;
        Ok(category)
    }

    /// Renames, re-describes, re-orders or moves a category. A move rewrites the paths of its
    /// descendants; the products in the subtree get new documents.
    pub async fn update_category(
        &self,
        id: CategoryId,
        patch: CategoryPatch,
        if_match: Option<i64>,
    ) -> Result<Category, CatalogError> {
        let now = self.clock.now();
        check_group_fields(
            ("/name", patch.name.as_deref()),
            patch.description.as_deref(),
            patch.handle.as_deref(),
        )?;
        let mut tx = self.db.begin_write().await?;
        let mut row = store::get_category(&mut tx, id.0)
            .await?
            .ok_or(CatalogError::CategoryNotFound)?;
        check_version(row.version, if_match)?;
        let old_path = row.path.clone();
        let mut touches_products = false;
        if let Some(handle) = patch.handle {
            if handle != row.handle
                && store::handle_in_use(&mut tx, HandleTable::Categories, &handle, id.0).await?
            {
                return Err(CatalogError::CategoryHandleTaken(handle));
            }
            touches_products |= handle != row.handle;
            row.handle = handle;
        }
        if let Some(name) = patch.name {
            let name = name.trim().to_owned();
            touches_products |= name != row.name;
            row.name = name;
        }
        if let Some(d) = patch.description {
            row.description = d.trim().to_owned();
        }
        if let Some(position) = patch.position {
            row.position = position;
        }
        if let Some(parent) = patch.parent_id {
            let parent_path = match parent {
                Some(p) => {
                    let prow = store::get_category(&mut tx, p.0).await?.ok_or_else(|| {
                        CatalogError::field(
                            "/parent_id",
                            "unknown_category",
                            "no category with this id",
                        )
                    })?;
                    if prow.path.starts_with(&old_path) {
                        return Err(CatalogError::field(
                            "/parent_id",
                            "category_cycle",
                            "a category cannot move under itself or its descendants",
                        ));
                    }
                    prow.path
                }
                None => "/".to_owned(),
            };
            row.parent_id = parent.map(|p| p.0);
            row.path = format!("{parent_path}{}/", id.0.simple());
        }
        row.version += 1;
        row.updated_at = now;
        store::update_category(&mut tx, &row)
            .await
            .map_err(|e| unique_or(e, || CatalogError::CategoryHandleTaken(row.handle.clone())))?;
        let category = category_of(&row)?;
        tx.record(&events::CategoryUpdated(category.clone()), row.version, now)
            .await?;
        let moved = row.path != old_path;
        if moved {
            for mut child in store::categories_in_subtree(&mut tx, &old_path).await? {
                if child.id == id.0 {
                    continue;
                }
                child.path = format!("{}{}", row.path, &child.path[old_path.len()..]);
                child.version += 1;
                child.updated_at = now;
                store::update_category(&mut tx, &child).await?;
                tx.record(
                    &events::CategoryUpdated(category_of(&child)?),
                    child.version,
                    now,
                )
                .await?;
            }
        }
        if touches_products || moved {
            let products = store::products_in_subtree(&mut tx, &row.path).await?;
            self.refresh_products(&mut tx, &products).await?;
        }
        tx.commit().await?;
        Ok(category)
    }

    /// Deletes a category without children; its products leave it.
    pub async fn delete_category(
        &self,
        id: CategoryId,
        if_match: Option<i64>,
    ) -> Result<(), CatalogError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let row = store::get_category(&mut tx, id.0)
            .await?
            .ok_or(CatalogError::CategoryNotFound)?;
        check_version(row.version, if_match)?;
        if store::count_children(&mut tx, id.0).await? > 0 {
            return Err(CatalogError::CategoryHasChildren);
        }
        let products = store::products_in_subtree(&mut tx, &row.path).await?;
        store::delete_category(&mut tx, id.0).await?;
        tx.record(&events::CategoryDeleted { id }, row.version + 1, now)
            .await?;
        self.refresh_products(&mut tx, &products).await?;
        tx.commit().await?;
        Ok(())
    }
}
