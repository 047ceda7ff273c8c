//! Ids that cross context boundaries: a cart line names a variant, a reservation names a stock
//! location. The context that owns each thing still owns its rows; these are only the names.

crate::typed_id!(
    /// A product (catalog).
    ProductId,
    "prod"
);
crate::typed_id!(
    /// A purchasable variant of a product (catalog); stock and prices hang off it.
    VariantId,
    "var"
);
crate::typed_id!(
    /// A node of the category tree (catalog).
    CategoryId,
    "pcat"
);
crate::typed_id!(
    /// A hand-picked collection of products (catalog).
    CollectionId,
    "pcol"
);
crate::typed_id!(
    /// A file attached to a product (catalog).
    MediaId,
    "med"
);
crate::typed_id!(
    /// A place stock is kept (inventory).
    LocationId,
    "sloc"
);
crate::typed_id!(
    /// A hold on stock for a checkout (inventory).
    ReservationId,
    "res"
);
crate::typed_id!(
    /// A set of prices over the variants' own, for a period or a customer group (pricing).
    PriceListId,
    "plist"
);
crate::typed_id!(
    /// A promotion: a benefit with its conditions, automatic or behind a coupon code (pricing).
    PromotionId,
    "promo"
);
crate::typed_id!(
    /// A coupon code that unlocks a promotion (pricing).
    CouponId,
    "cpn"
);
crate::typed_id!(
    /// A tax rate of a region (pricing).
    TaxRateId,
    "txr"
);
crate::typed_id!(
    /// A way to ship an order, priced flat or by weight (pricing).
    ShippingOptionId,
    "ship"
);
crate::typed_id!(
    /// A shopping cart (cart).
    CartId,
    "cart"
);
crate::typed_id!(
    /// One line of a cart (cart).
    CartItemId,
    "citem"
);
crate::typed_id!(
    /// A payment intent: one amount to authorise, capture, void or refund (payments).
    PaymentId,
    "pay"
);
crate::typed_id!(
    /// An order (ordering).
    OrderId,
    "ord"
);
crate::typed_id!(
    /// One run of the checkout saga for a cart (ordering).
    CheckoutId,
    "chk"
);
