//! Runnable example programs for kcl live in `src/bin/` (see the README).
