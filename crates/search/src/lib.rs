//! Product search: a tantivy index projected from catalog and inventory events.
