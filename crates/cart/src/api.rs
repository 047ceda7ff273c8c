//! What other contexts call: [`CartApi`], implemented by [`CartService`]. A checkout holds and
//! releases its cart inside its own transaction: cart shares its database with the ordering
//! group (cart, pricing, payments, ordering), which runs as one service.

use emporium_db::{Sql, WriteTx};
use emporium_kernel::ids::CartId;
use uuid::Uuid;

use crate::error::CartError;
use crate::service::{Access, Cart, CartService};

/// Carts as the checkout uses them.
#[async_trait::async_trait]
pub trait CartApi: Send + Sync {
    /// Cart `id` with its totals, for a caller `access` opens it to; `CartNotFound` otherwise.
    async fn get(&self, id: CartId, access: Access<'_>) -> Result<Cart, CartError>;

    /// Lets checkout `checkout` hold cart `id`, in `tx`, if the cart is still at `version` and
    /// no other checkout holds it; false otherwise. A held cart takes no change.
    async fn hold_in(
        &self,
        tx: &mut WriteTx,
        id: CartId,
        version: i64,
        checkout: Uuid,
    ) -> Result<bool, CartError>;

    /// The conditional write of [`CartApi::hold_in`], for the caller's own guarded write
    /// (`Db::guarded_write`): it applies when the hold is taken.
    fn hold_guard(&self, id: CartId, version: i64, checkout: Uuid) -> Sql;

    /// Gives cart `id` back to changes, in `tx`, if checkout `checkout` holds it.
    async fn release_in(
        &self,
        tx: &mut WriteTx,
        id: CartId,
        checkout: Uuid,
    ) -> Result<(), CartError>;

    /// Closes (deletes) the carts `ids`, whose orders are placed.
    async fn close_all(&self, ids: &[CartId]) -> Result<(), CartError>;
}

#[async_trait::async_trait]
impl CartApi for CartService {
    async fn get(&self, id: CartId, access: Access<'_>) -> Result<Cart, CartError> {
        CartService::get(self, id, access).await
    }

    async fn hold_in(
        &self,
        tx: &mut WriteTx,
        id: CartId,
        version: i64,
        checkout: Uuid,
    ) -> Result<bool, CartError> {
        CartService::hold_in(self, tx, id, version, checkout).await
    }

    fn hold_guard(&self, id: CartId, version: i64, checkout: Uuid) -> Sql {
        crate::store::hold_statement(id.0, version, checkout)
    }

    async fn release_in(
        &self,
        tx: &mut WriteTx,
        id: CartId,
        checkout: Uuid,
    ) -> Result<(), CartError> {
        CartService::release_in(self, tx, id, checkout).await
    }

    async fn close_all(&self, ids: &[CartId]) -> Result<(), CartError> {
        CartService::close_all(self, ids).await
    }
}
