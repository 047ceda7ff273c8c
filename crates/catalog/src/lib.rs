//! Products, variants, options, categories, collections and media.
