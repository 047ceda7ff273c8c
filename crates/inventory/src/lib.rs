//! Stock locations, stock levels, reservations with expiry and the adjustment ledger.
