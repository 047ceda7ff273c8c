-- The checkout that holds the cart: set when a checkout claims it, cleared when that checkout
-- fails. A held cart takes no change (409 `cart_checked_out`); its order is built from it.
ALTER TABLE carts ADD COLUMN checkout_id BLOB;
