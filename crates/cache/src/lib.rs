//! The catalog read cache: in-process (moka) with room for a second level, guarded against penetration, breakdown and avalanche.
